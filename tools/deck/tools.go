//go:build tools

// Package tools pins the decK release the end-to-end test drives (make test-deck): stock decK,
// built from its module with the go-kong version that release was made with. It is its own
// module so that the gantry module never depends on decK.
package tools

import _ "github.com/kong/deck"
