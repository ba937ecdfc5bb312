package router

import "strings"

// Path handling versions of a route (the routes.path_handling field).
const (
	// PathHandlingV0 is Kong's default and the only behaviour of its
	// traditional_compatible router.
	PathHandlingV0 = "v0"
	// PathHandlingV1 is the deprecated behaviour of Kong's traditional
	// router. Kong's traditional_compatible router ignores it; callers that
	// want that behaviour pass PathHandlingV0 whatever the route says.
	PathHandlingV1 = "v1"
)

// sanitizePostfix drops a leading "." or ".." segment from the part of the
// request path that follows the matched prefix, so a prefix that ends in the
// middle of a segment cannot smuggle a dot segment upstream.
func sanitizePostfix(s string) string {
	switch {
	case s == "":
		return s
	case s == "." || s == "..":
		return ""
	case strings.HasPrefix(s, "./"):
		return s[2:]
	case strings.HasPrefix(s, "../"):
		return s[3:]
	}
	return s
}

// UpstreamPath computes the path and query Kong sends to the upstream
// service for a matched request.
//
//   - servicePath is the service's path; "" means the service has none and
//     behaves as "/".
//   - requestTarget is the client's request target, path plus optional
//     "?query". The path part is normalized with NormalizePath first, as
//     the router saw it.
//   - matched is Match.MatchedPath: the route path prefix that matched, or
//     the whole text matched by a regex path; "" when the route has no paths.
//   - stripPath and pathHandling are the route's fields; any value other
//     than PathHandlingV1 selects v0.
//
// With strip_path the matched part is cut from the request path and the rest
// appended to the service path without doubling or losing the '/' between
// them (kong/router/utils.get_upstream_uri_v0); without it the whole request
// path is appended. The result is escaped with EscapePath. When the request
// target carried a '?', it is appended with the query, even an empty one.
func UpstreamPath(servicePath, requestTarget, matched string, stripPath bool, pathHandling string) string {
	reqPath := StripQuery(requestTarget)
	query, hasQuery := "", false
	if len(reqPath) < len(requestTarget) {
		query, hasQuery = requestTarget[len(reqPath)+1:], true
	}
	reqPath = NormalizePath(reqPath)

	base := servicePath
	if base == "" {
		base = "/"
	}
	prefix := "/"
	if stripPath && matched != "" {
		prefix = matched
	}
	postfix := ""
	if len(prefix) < len(reqPath) {
		postfix = sanitizePostfix(reqPath[len(prefix):])
	}

	var up string
	if pathHandling == PathHandlingV1 {
		up = upstreamV1(base, reqPath, postfix, stripPath)
	} else {
		up = upstreamV0(base, reqPath, postfix, stripPath)
	}
	up = EscapePath(up)
	if hasQuery {
		return up + "?" + query
	}
	return up
}

// upstreamV0 is Kong's get_upstream_uri_v0.
func upstreamV0(base, reqPath, postfix string, strip bool) string {
	endsSlash := strings.HasSuffix(base, "/")
	switch {
	case endsSlash && strip:
		switch {
		case postfix == "":
			if base == "/" {
				return "/"
			}
			if strings.HasSuffix(reqPath, "/") {
				return base
			}
			return base[:len(base)-1]
		case postfix[0] == '/':
			return base[:len(base)-1] + postfix
		default:
			return base + postfix
		}
	case endsSlash:
		return base + strings.TrimPrefix(reqPath, "/")
	case strip:
		switch {
		case postfix == "":
			if len(reqPath) > 1 && strings.HasSuffix(reqPath, "/") {
				return base + "/"
			}
			return base
		case postfix[0] == '/':
			return base + postfix
		default:
			return base + "/" + postfix
		}
	default:
		if reqPath == "/" {
			return base
		}
		return base + reqPath
	}
}

// upstreamV1 is the path_handling=v1 branch of Kong's traditional router.
func upstreamV1(base, reqPath, postfix string, strip bool) string {
	if !strip {
		return base + strings.TrimPrefix(reqPath, "/")
	}
	if strings.HasSuffix(base, "/") && strings.HasPrefix(postfix, "/") {
		return base[:len(base)-1] + postfix
	}
	return base + postfix
}
