package keyring_test

import (
	"crypto/rand"
	"fmt"

	"github.com/trellisrpc/trellis/keyring"
)

// One ring, given to membership (membership.Config.Keyring) and to the node
// (runtime.Config.Keyring), rotates both with one Set.
func Example() {
	oldKey, newKey := make([]byte, 32), make([]byte, 32)
	rand.Read(oldKey)
	rand.Read(newKey)

	ring, err := keyring.New(oldKey)
	if err != nil {
		panic(err)
	}
	tag := ring.Sum([]byte("proof"))

	// Rotation, done on every node at each step: add, promote, drop.
	ring.Set(oldKey, newKey)
	ring.Set(newKey, oldKey)
	fmt.Println("old tag still verifies:", ring.Verify(tag, []byte("proof")))
	ring.Set(newKey)
	fmt.Println("after dropping the old key:", ring.Verify(tag, []byte("proof")))
	// Output:
	// old tag still verifies: true
	// after dropping the old key: false
}
