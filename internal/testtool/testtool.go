// Package testtool finds the programs a test drives (jq, ssh-keygen, bash):
// without one the test skips, saying so, except in CI, whose .ci/run
// installs them all and where a skip would hide a missing test.
package testtool

import (
	"os"
	"os/exec"
	"path/filepath"
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

// CLIInstall installs the Temporal CLI the tests drive.
const CLIInstall = "go install github.com/temporalio/cli/cmd/temporal@v1.5.1"

// TemporalCLI finds the Temporal CLI, on PATH or where go install puts it,
// or skips the test (fails it in CI).
func TemporalCLI(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("temporal"); err == nil {
		return p
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		home, _ := os.UserHomeDir()
		gopath = filepath.Join(home, "go")
	}
	p := filepath.Join(gopath, "bin", "temporal")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("the Temporal CLI is not installed; .ci/run must install it: %s", CLIInstall)
	}
	t.Skipf("the Temporal CLI is not installed, so this test is skipped; install it with: %s", CLIInstall)
	return ""
}
