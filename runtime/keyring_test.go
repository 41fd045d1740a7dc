package runtime

import "github.com/trellisrpc/trellis/keyring"

// testKeyring is the cluster keyring of the nodes these tests make.
var testKeyring = mustRing([]byte("runtime-test-cluster-key-0123456"))

func mustRing(key []byte) *keyring.Ring {
	r, err := keyring.New(key)
	if err != nil {
		panic(err)
	}
	return r
}
