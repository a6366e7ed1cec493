// Package testport hands tests ports to listen on.
package testport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"testing"
)

var (
	mu    sync.Mutex
	given = map[int]bool{}
)

// Free is a port on 127.0.0.1 that is free now, never given before in this
// process, and below Linux's ephemeral range (32768 and up). A port the
// kernel hands out for ":0" may be taken by any outgoing connection of the
// tests running beside these before the server binds it, and the Web UI
// exits the whole process when its port is taken.
func Free(t testing.TB) int {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	for range 1000 {
		p := 20000 + rand.IntN(12000)
		if given[p] {
			continue
		}
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		l.Close()
		given[p] = true
		return p
	}
	t.Fatal("no free port between 20000 and 32000 on 127.0.0.1")
	return 0
}
