package main

import (
	"fmt"
	"math/rand/v2"
)

// keyspace names the loaded keys: key i is pod i of namespace i mod
// namespaces, so every step of the load appends to every namespace (as a
// cluster's pods arrive across namespaces) and namespace 0, the watched
// one, gets 1/namespaces of the keys.
type keyspace struct{ namespaces int }

func (k keyspace) prefix(ns int) string { return fmt.Sprintf("/registry/pods/ns-%04d/", ns) }

func (k keyspace) key(i int) string { return fmt.Sprintf("%spod-%08d", k.prefix(i%k.namespaces), i) }

// randomKey is one of the first loaded keys, uniformly: across the whole
// keyspace, so that reads miss every cache smaller than it.
func (k keyspace) randomKey(rng *rand.Rand, loaded int) string { return k.key(rng.IntN(loaded)) }

// randomWatchedKey is one of the first loaded keys in namespace 0.
func (k keyspace) randomWatchedKey(rng *rand.Rand, loaded int) string {
	n := (loaded + k.namespaces - 1) / k.namespaces // keys i < loaded with i mod namespaces == 0
	return k.key(rng.IntN(n) * k.namespaces)
}

// alphabet gives values of 6 random bits a byte: no compressor shrinks
// them much, so the store holds the bytes the table says it loaded.
const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

// fillValue overwrites b with random alphabet bytes.
func fillValue(rng *rand.Rand, b []byte) {
	for i := 0; i < len(b); {
		r := rng.Uint64()
		for j := 0; j < 10 && i < len(b); j++ {
			b[i] = alphabet[r&63]
			r >>= 6
			i++
		}
	}
}
