// Package all registers every bundled plugin with the plugin registry;
// import it for its side effects.
package all

import (
	// Each package registers itself in init().
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/acl"
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/basicauth"
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/botdetection"
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/correlationid"
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/cors"
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/filelog"
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/hmacauth"
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/httplog"
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/iprestriction"
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/jwt"
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/keyauth"
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/prometheus"
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/proxycache"
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/ratelimiting"
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/requestsizelimiting"
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/requesttermination"
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/requesttransformer"
	_ "github.com/gantry-gw/gantry/internal/dp/plugins/responsetransformer"
)
