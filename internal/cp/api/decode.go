package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
)

// MaxBodyBytes bounds every management API request body (1 MiB).
const MaxBodyBytes = 1 << 20

// DecodeJSON reads the request body into v strictly: JSON content type, a single object, no
// unknown fields, each field of the right type, at most MaxBodyBytes. Each failure is a 400 that
// names what is wrong.
func DecodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return &Problem{Status: http.StatusUnsupportedMediaType, Detail: fmt.Sprintf("Content-Type %q is not supported: send application/json.", ct)}
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return badRequest(fmt.Sprintf("The request body is larger than the limit of %d bytes.", MaxBodyBytes),
				InvalidParameter{Field: "body", Rule: "max_size", Reason: fmt.Sprintf("must be at most %d bytes", MaxBodyBytes), Source: "body"})
		}
		return badRequest("The request body could not be read: " + err.Error())
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("The request body is empty: send a JSON object.",
			InvalidParameter{Field: "body", Rule: "required", Reason: "is required", Source: "body"})
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonProblem(body, err)
	}
	if dec.More() {
		return badRequest("The request body holds more than one JSON value.",
			InvalidParameter{Field: "body", Rule: "json", Reason: "must be a single JSON object", Source: "body"})
	}
	return nil
}

// jsonProblem turns a decoding error into a 400 naming the field or position.
func jsonProblem(body []byte, err error) *Problem {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return badRequest(fmt.Sprintf("The request body is not valid JSON: %v (at byte %d).", syn, syn.Offset),
			InvalidParameter{Field: "body", Rule: "json", Reason: "must be valid JSON", Source: "body"})
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("The request body is not valid JSON: it ends too early.",
			InvalidParameter{Field: "body", Rule: "json", Reason: "must be valid JSON", Source: "body"})
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "body"
		}
		reason := "must be " + jsonKind(typ.Type.Kind().String())
		return badRequest(fmt.Sprintf("The field %q has the wrong type: it %s, not %s.", field, reason, typ.Value),
			InvalidParameter{Field: field, Rule: "type", Reason: reason, Source: "body"})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		field := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return badRequest(fmt.Sprintf("The field %q is not known.", field),
			InvalidParameter{Field: field, Rule: "unknown_field", Reason: "is not a known field", Source: "body"})
	}
	return badRequest("The request body could not be decoded: "+err.Error(),
		InvalidParameter{Field: "body", Rule: "json", Reason: err.Error(), Source: "body"})
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "map", "struct":
		return "an object"
	case "slice", "array":
		return "an array"
	case "ptr":
		return "an object or null"
	}
	if strings.HasPrefix(goKind, "int") || strings.HasPrefix(goKind, "uint") || strings.HasPrefix(goKind, "float") {
		return "a number"
	}
	return "of another type"
}
