// Package storetest makes recovery-point stores for tests.
package storetest

import (
	"context"
	"os"
	"testing"

	"recoveryvault/store"
)

// Password is the repository password of test stores.
const Password = "test repository password"

// New is a store in a directory of the test.
func New(t testing.TB) *store.Store {
	t.Helper()
	return At(t, t.TempDir())
}

// At is a store at location (a directory, or s3://BUCKET/PREFIX with the
// AWS environment set).
func At(t testing.TB, location string) *store.Store {
	t.Helper()
	// Tests' sources and targets are their temporary directories.
	s, err := store.Open(context.Background(), store.Options{Location: location, Password: Password, WorkDir: t.TempDir(),
		SourceRoots: []string{os.TempDir()}, RestoreRoots: []string{os.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
