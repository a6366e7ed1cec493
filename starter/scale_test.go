package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestScaleMeasuresABurstAndTheGuardHoldsTheRest runs the scale command on
// a real server: every item protected, the burst all SoftDeleted, the
// guarded deletes no more than the threshold through, the others held and
// then let through by the clear.
func TestScaleMeasuresABurstAndTheGuardHoldsTheRest(t *testing.T) {
	k := startCluster(t)
	db := filepath.Join(t.TempDir(), "db")
	require.NoError(t, os.WriteFile(db, make([]byte, 3<<20), 0o600))
	out, err := k.starter("scale", "--vault", "scale1", "--items", "12", "--burst", "5", "--guarded", "5", "--guard-threshold", "2",
		"--baseline-items", "6", "--concurrency", "4", "--settle", "3m", "--worker-pid", strconv.Itoa(os.Getpid()), "--db", db)
	require.NoError(t, err, out)
	assert.Regexp(t, `baseline +6 logic-free workflows in \S+: \d+\.\d/s`, out)
	assert.Regexp(t, `protect +12 items to their first backup in \S+: \d+\.\d/s, \d+% of the baseline`, out)
	assert.Regexp(t, `burst, guard off +5 deletes, every one SoftDeleted in visibility after \S+`, out)
	assert.Contains(t, out, "burst, guard on    5 deletes: 2 through (threshold 2), 3 held at their items")
	assert.Regexp(t, `hold cleared +the 3 held deletes SoftDeleted after \S+`, out)
	assert.Regexp(t, `worker memory +\d+ MiB resident now, \d+ MiB at most`, out)
	assert.Contains(t, out, "database           3 MiB")
	assert.Equal(t, 10, k.counts("scale1")["SoftDeleted"], "5 + 5 deletes, none lost")

	// Each refusal names the flag and what it takes, and starts nothing.
	for args, refusal := range map[string]string{
		"--burst 10 --guarded 5":          "--burst 10 and --guarded 5: delete at most the 12 items, in all",
		"--guarded 5 --guard-threshold 5": "give a threshold from 1 to 4, below --guarded, so that the guard has deletes to hold",
		"--items 0":                       "--items 0: protect 1 to 100000 items",
		"--settle 0s":                     "--settle 0s: give each phase a time limit",
		"--concurrency 0":                 "--concurrency 0: send 1 to 1000 calls at once",
		"--baseline-items -1":             "--baseline-items -1: run 0 to 100000 baseline workflows",
	} {
		base := []string{"scale", "--vault", "scale2", "--items", "12", "--burst", "1", "--guarded", "0"}
		_, err := k.starter(append(base, regexp.MustCompile(`\s+`).Split(args, -1)...)...)
		assert.ErrorContains(t, err, refusal, args)
	}
	assert.Zero(t, k.counts("scale2")["Protected"], "a refused run starts nothing")
}
