// Package s3test runs a real S3 server for tests: versitygw, as a process
// of the test, on 127.0.0.1, with versioning and object lock.
package s3test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"recoveryvault/internal/testport"
)

// Server is a running versitygw.
type Server struct {
	Endpoint  string // http://127.0.0.1:PORT
	AccessKey string
	SecretKey string
	// Client talks to it with the same credentials.
	Client *minio.Client
	// Data is the directory that holds the current version of every
	// object, as files: a test may damage one there, as a failing disk would.
	Data string
	dirs []string
}

// Binary finds versitygw: on the PATH, or where go install puts it.
func Binary() (string, bool) {
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p, true
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		home, _ := os.UserHomeDir()
		gopath = filepath.Join(home, "go")
	}
	p := filepath.Join(gopath, "bin", "versitygw")
	_, err := os.Stat(p)
	return p, err == nil
}

// Start runs versitygw for the test and stops it when the test ends. A
// machine without it skips the test, saying so, unless
// RECOVERYVAULT_REQUIRE_S3 is set (as in CI), where it fails.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, ok := Binary()
	if !ok {
		if os.Getenv("RECOVERYVAULT_REQUIRE_S3") != "" {
			t.Fatal("versitygw is not installed: go install github.com/versity/versitygw/cmd/versitygw@v1.8.0")
		}
		t.Skip("versitygw is not installed (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0): the S3 tests need a real S3 server")
	}
	root := t.TempDir()
	data, versions := filepath.Join(root, "data"), filepath.Join(root, "versions")
	for _, d := range []string{data, versions} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	addr := fmt.Sprintf("127.0.0.1:%d", testport.Free(t))
	s := &Server{Endpoint: "http://" + addr, AccessKey: "recoveryvault", SecretKey: "recoveryvault-test-secret", Data: data}
	// Without --versioning-dir a bucket made with object lock would stay
	// unversioned.
	cmd := exec.Command(bin, "--port", addr, "--access", s.AccessKey, "--secret", s.SecretKey, "--quiet",
		"posix", "--versioning-dir", versions, data)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	})
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond); err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("versitygw did not listen on %s", addr)
		}
	}
	var err error
	s.Client, err = minio.New(addr, &minio.Options{Creds: credentials.NewStaticV4(s.AccessKey, s.SecretKey, ""), Region: "us-east-1"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Bucket makes a bucket, with object lock when locked.
func (s *Server) Bucket(t testing.TB, name string, locked bool) {
	t.Helper()
	if err := s.Client.MakeBucket(context.Background(), name, minio.MakeBucketOptions{Region: "us-east-1", ObjectLocking: locked}); err != nil {
		t.Fatalf("make bucket %s: %v", name, err)
	}
}

// Env is the AWS SDK's standard environment for this server.
func (s *Server) Env() map[string]string {
	return map[string]string{
		"AWS_ACCESS_KEY_ID":     s.AccessKey,
		"AWS_SECRET_ACCESS_KEY": s.SecretKey,
		"AWS_REGION":            "us-east-1",
		"AWS_ENDPOINT_URL_S3":   s.Endpoint,
	}
}

// Setenv sets that environment for the rest of the test.
func (s *Server) Setenv(t testing.TB) {
	for k, v := range s.Env() {
		t.Setenv(k, v)
	}
}
