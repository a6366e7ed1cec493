// Command bucket prepares and inspects an S3 bucket for Recovery Vault, with
// the AWS SDK's standard environment (AWS_ENDPOINT_URL_S3, AWS_REGION, the
// credentials): the scale-out test uses it, and so can an operator.
//
//	go run ./deploy/bucket create NAME   # a bucket with object lock (and so versioning)
//	go run ./deploy/bucket count NAME PREFIX   # objects, versions and delete markers under PREFIX
package main

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "bucket:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) < 2 || (args[0] == "count" && len(args) < 3) {
		return fmt.Errorf("usage: bucket create NAME | bucket count NAME PREFIX")
	}
	endpoint := cmp.Or(os.Getenv("AWS_ENDPOINT_URL_S3"), os.Getenv("AWS_ENDPOINT_URL"), "https://s3.amazonaws.com")
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" {
		return fmt.Errorf("S3 endpoint %q is not a URL", endpoint)
	}
	region := cmp.Or(os.Getenv("AWS_REGION"), os.Getenv("AWS_DEFAULT_REGION"), "us-east-1")
	cli, err := minio.New(u.Host, &minio.Options{Creds: credentials.NewEnvAWS(), Secure: u.Scheme != "http", Region: region})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	switch args[0] {
	case "create":
		// Run again, it checks the bucket it made.
		if exists, err := cli.BucketExists(ctx, args[1]); err == nil && exists {
			if enabled, _, _, _, err := cli.GetObjectLockConfig(ctx, args[1]); err != nil || enabled != "Enabled" {
				return fmt.Errorf("bucket %s exists without object lock, which cannot be added later: use another bucket", args[1])
			}
			fmt.Printf("bucket %s has object lock at %s\n", args[1], endpoint)
			return nil
		}
		if err := cli.MakeBucket(ctx, args[1], minio.MakeBucketOptions{Region: region, ObjectLocking: true}); err != nil {
			return fmt.Errorf("create bucket %s with object lock: %w", args[1], err)
		}
		fmt.Printf("bucket %s created with object lock at %s\n", args[1], endpoint)
	case "count":
		n := 0
		for o := range cli.ListObjects(ctx, args[1], minio.ListObjectsOptions{Prefix: args[2], Recursive: true, WithVersions: true}) {
			if o.Err != nil {
				return o.Err
			}
			n++
		}
		fmt.Println(n)
	default:
		return fmt.Errorf("unknown command %q: create or count", args[0])
	}
	return nil
}
