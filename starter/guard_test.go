package main

import (
	"context"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	enumspb "go.temporal.io/api/enums/v1"

	"recoveryvault/workflows/item"
	"recoveryvault/workflows/protocol"
)

// TestTheMassDeleteGuardHoldsABurstUntilCleared, on a real server: with a
// threshold of one, the second delete of a burst waits, visibly, and goes
// through once the hold is cleared.
func TestTheMassDeleteGuardHoldsABurstUntilCleared(t *testing.T) {
	k := startCluster(t)
	for _, id := range []string{"vm1", "vm2", "vm3"} {
		k.mustJSON("protect", "--vault", "burst", "--item", id, "--source", writeSource(t))
	}
	require.Eventually(t, func() bool { return k.counts("burst")[protocol.Protected] == 3 }, 20*time.Second, 100*time.Millisecond)
	out, err := k.starter("vault", "set-mass-delete-guard", "--vault", "burst", "--threshold", "1", "--window", "1h", "--requested-by", "alice")
	require.NoError(t, err, out)
	assert.Contains(t, out, "Mass delete  mass-delete guard on: after 1 delete within 1h0m0s, further deletes are held")

	st := k.mustJSON("delete", "--vault", "burst", "--item", "vm1", "--requested-by", "mallory")
	assert.Equal(t, protocol.SoftDeleted, st.ProtectionState, "the first delete is within the threshold")
	out, err = k.starter("delete", "--vault", "burst", "--item", "vm2", "--requested-by", "mallory")
	require.NoError(t, err, out)
	assert.Contains(t, out, "Delete waiting for the vault: asked by mallory")
	assert.Contains(t, out, "the vault's mass-delete guard holds it until an operator clears the hold (starter vault clear-mass-delete-hold --vault burst)",
		"said in the starter's words")
	assert.Equal(t, protocol.Protected, k.mustJSON("status", "--vault", "burst", "--item", "vm2").ProtectionState)
	// vm2 asks again while the hold lasts: the hold its vault publishes
	// answers it, and the vault itself is not asked.
	var waiting *item.PendingDelete
	require.Eventually(t, func() bool {
		waiting = k.mustJSON("status", "--vault", "burst", "--item", "vm2").PendingDelete
		return waiting != nil && waiting.Attempts >= 2
	}, 30*time.Second, 200*time.Millisecond, "the held delete asked again")
	assert.True(t, waiting.Held)
	assert.Contains(t, waiting.Why, "vault burst holds deletes since")
	assert.Contains(t, waiting.Why, "the delete waits until the hold is cleared (clearMassDeleteHold)")
	assert.Equal(t, 2, k.updatesAt(protocol.VaultWorkflowID("burst"), protocol.UpdateItemDelete),
		"vm1's delete and vm2's first ask reached the vault, vm2's second did not")
	out, err = k.starter("vault", "status", "--vault", "burst")
	require.NoError(t, err, out)
	assert.Contains(t, out, "HOLDING DELETES")
	// Where an operator looks: the vault's status and the list say which
	// delete waits, from visibility.
	require.Eventually(t, func() bool {
		out, err = k.starter("vault", "status", "--vault", "burst")
		return err == nil && regexp.MustCompile(`Deletes waiting +1 for the vault, 0 for approval`).MatchString(out)
	}, 20*time.Second, 200*time.Millisecond, "vault status: %s", out)
	require.Eventually(t, func() bool {
		out, err = k.starter("list", "--vault", "burst")
		return err == nil && regexp.MustCompile(`vm2 +Protected +- +- +delete waits for the vault`).MatchString(out)
	}, 20*time.Second, 200*time.Millisecond, "list: %s", out)

	out, err = k.starter("vault", "clear-mass-delete-hold", "--vault", "burst", "--requested-by", "alice", "--reason", "planned")
	require.NoError(t, err, out)
	assert.NotContains(t, out, "HOLDING DELETES")
	require.Eventually(t, func() bool {
		return k.mustJSON("status", "--vault", "burst", "--item", "vm2").ProtectionState == protocol.SoftDeleted
	}, 30*time.Second, 200*time.Millisecond, "the held delete went through at its next try")
	k.replayAndSave(protocol.VaultWorkflowID("burst"), "vault-guard.json")
}

// updatesAt counts the updates of a name a workflow accepted.
func (k *cluster) updatesAt(workflowID, name string) int {
	n := 0
	it := k.c.GetWorkflowHistory(context.Background(), workflowID, "", false, enumspb.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT)
	for it.HasNext() {
		e, err := it.Next()
		require.NoError(k.t, err)
		if a := e.GetWorkflowExecutionUpdateAcceptedEventAttributes(); a != nil && a.GetAcceptedRequest().GetInput().GetName() == name {
			n++
		}
	}
	return n
}
