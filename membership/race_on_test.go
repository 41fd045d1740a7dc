//go:build race

package membership_test

// raceEnabled is true under the race detector. The long simulations run in a
// single goroutine, where the detector has nothing to find but is 10–20× slower,
// so they are cut down under it.
const raceEnabled = true
