// Package shared holds types that the kv test service uses from another
// package.
package shared

// Region names a part of the world.
type Region string

// User owns entries.
type User struct {
	Name   string
	Groups []string
}

// Tag labels an entry.
type Tag struct {
	Key, Value string
}
