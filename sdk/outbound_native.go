//go:build !wasip1

package sdk

// inBase reports whether the calling code is a native module's, running in a base.
func inBase() bool { return current() != nil }
