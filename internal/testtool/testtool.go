// Package testtool finds the programs a test drives (jq, ssh-keygen, bash):
// without one the test skips, saying so, except in CI, whose .ci/run
// installs them all and where a skip would hide a missing test.
package testtool

import (
	"os"
	"os/exec"
	"testing"
)

// Need returns the path of program name, or skips the test (fails it in CI).
func Need(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is not installed; .ci/run must install it", name)
	}
	t.Skipf("%s is not installed, so this test is skipped", name)
	return ""
}
