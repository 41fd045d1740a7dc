package memberlist_test

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// figureSizes returns the cluster sizes in TRELLIS_FIGURES_SIZES (a comma
// list, each at least min), or def when it is unset.
func figureSizes(t *testing.T, def []int, min int) []int {
	t.Helper()
	v := os.Getenv("TRELLIS_FIGURES_SIZES")
	if v == "" {
		return def
	}
	var sizes []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < min {
			t.Fatalf("TRELLIS_FIGURES_SIZES: %q is not a size of at least %d", f, min)
		}
		sizes = append(sizes, n)
	}
	return sizes
}

// figureDuration returns the duration in the environment variable name, or
// def when it is unset.
func figureDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return d
}
