package analytics

import "unsafe"

// unsafeString views b as a string, as request memory that is reused
// after the request would be.
func unsafeString(b []byte) string { return unsafe.String(&b[0], len(b)) }
