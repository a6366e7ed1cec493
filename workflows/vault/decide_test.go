package vault_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"recoveryvault/internal/signing"
	"recoveryvault/internal/signingtest"
	"recoveryvault/workflows/protocol"
	. "recoveryvault/workflows/vault"
)

// The vault's rulebook, command by command, in each kind of vault: what
// each command does there, or why it is refused, or which fact it waits
// for. Settings states: a plain vault, one under multi-user authorization,
// one that requires signatures, one whose guard holds deletes, and one
// deleted.
func TestVaultDecidesEveryCommandInEveryState(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	alice := signingtest.New(t, "alice")
	counted := &ItemCount{HoldingData: 3, At: now}
	noItems := &[]protocol.ListedItem{}
	item := &Check{}

	plain := VaultState{ID: "v", SoftDelete: protocol.DefaultSoftDeleteSettings()}
	mua := plain
	mua.Mua = MuaSettings{Enabled: true, Approvers: []string{"alice", "bob"}, ApprovalWindow: "24h0m0s"}
	signed := plain
	signed.AllowedSigners = signingtest.AllowedSigners(alice)
	held := plain
	held.MassDelete.HeldSince = now.Add(-time.Hour)
	deleted := plain
	deleted.Deleted = true
	pending := mua
	pending.Requests = []protocol.MuaRequest{{RequestID: "r-1", Operation: protocol.UpdateSetSoftDelete, RequestedBy: "alice", State: protocol.RequestPending,
		ExpiresAt: now.Add(time.Hour), SoftDelete: &protocol.SetSoftDeleteRequest{State: protocol.SoftDeleteDisabled}}}
	deletion := mua
	deletion.Requests = []protocol.MuaRequest{{RequestID: "r-1", Operation: protocol.UpdateDeleteVault, RequestedBy: "alice", State: protocol.RequestPending,
		ExpiresAt: now.Add(time.Hour)}}
	expired := pending
	expired.Requests = []protocol.MuaRequest{pending.Requests[0]}
	expired.Requests[0].ExpiresAt = now

	cmd := func(op string, payload any) Command { return Command{Op: op, Payload: payload} }
	disable := cmd(protocol.UpdateSetSoftDelete, protocol.SetSoftDeleteRequest{State: protocol.SoftDeleteDisabled, RequestedBy: "alice"})
	longer := cmd(protocol.UpdateSetSoftDelete, protocol.SetSoftDeleteRequest{RetentionDays: 30, RequestedBy: "alice"})
	muaOn := cmd(protocol.UpdateEnableMua, protocol.EnableMuaRequest{Approvers: []string{"alice", "bob"}, RequestedBy: "alice"})
	muaOff := cmd(protocol.UpdateEnableMua, protocol.EnableMuaRequest{Enabled: new(false), RequestedBy: "alice"})
	setSigners := cmd(UpdateSetAllowedSigners, protocol.SetAllowedSignersRequest{AllowedSigners: signingtest.AllowedSigners(alice), RequestedBy: "alice"})
	guardOff := cmd(UpdateSetMassDeleteGuard, protocol.SetMassDeleteGuardRequest{Enabled: new(false), RequestedBy: "alice"})
	guardTighter := cmd(UpdateSetMassDeleteGuard, protocol.SetMassDeleteGuardRequest{Threshold: 5, RequestedBy: "alice"})
	clearHold := cmd(UpdateClearMassDeleteHold, protocol.Request{RequestedBy: "alice"})
	deleteVault := cmd(protocol.UpdateDeleteVault, protocol.Request{RequestedBy: "alice"})
	approve := cmd(protocol.UpdateApprove, protocol.DecisionRequest{RequestID: "r-1", RequestedBy: "bob"})
	reject := cmd(protocol.UpdateReject, protocol.DecisionRequest{RequestID: "r-1", RequestedBy: "alice"})
	itemDelete := cmd(protocol.UpdateItemDelete, protocol.ItemDeleteRequest{ItemID: "vm1", RequestedBy: "alice", At: now})
	expire := Command{Op: "expire", By: "system"}

	type want struct {
		refused string // a part of the refusal; "" for none
		ask     Ask
		audit   string // the last audit line's operation/outcome, when one is added
		check   func(t *testing.T, d Decision)
	}
	softDelete := func(state protocol.SoftDeleteState) func(*testing.T, Decision) {
		return func(t *testing.T, d Decision) { assert.Equal(t, state, d.State.SoftDelete.State) }
	}
	opened := func(t *testing.T, d Decision) {
		require.NotNil(t, d.Request)
		assert.Equal(t, protocol.RequestPending, d.Request.State)
	}
	cases := []struct {
		name  string
		st    VaultState
		c     Command
		facts Facts
		want  want
	}{
		{"plain/disable", plain, disable, Facts{}, want{audit: "setSoftDelete/accepted", check: softDelete(protocol.SoftDeleteDisabled)}},
		{"plain/longer", plain, longer, Facts{}, want{audit: "setSoftDelete/accepted"}},
		{"plain/enableMua", plain, muaOn, Facts{}, want{audit: "enableMua/accepted"}},
		{"plain/setAllowedSigners", plain, setSigners, Facts{}, want{audit: "setAllowedSigners/accepted"}},
		{"plain/guard off asks the count", plain, guardOff, Facts{}, want{ask: AskCount}},
		{"plain/guard off", plain, guardOff, Facts{Count: counted}, want{audit: "setMassDeleteGuard/accepted"}},
		{"plain/clear with nothing held", plain, clearHold, Facts{}, want{refused: "holds no deletes: there is nothing to clear", audit: "clearMassDeleteHold/rejected"}},
		{"plain/deleteVault asks its items", plain, deleteVault, Facts{}, want{ask: AskItems}},
		{"plain/deleteVault", plain, deleteVault, Facts{Items: noItems}, want{audit: "deleteVault/accepted", check: func(t *testing.T, d Decision) { assert.True(t, d.State.Deleted) }}},
		{"plain/deleteVault with items", plain, deleteVault, Facts{Items: &[]protocol.ListedItem{{WorkflowID: protocol.WorkflowID("v", "vm1"), ProtectionState: "Protected"}}},
			want{refused: "it holds 1 item with backup data: vm1 (Protected)", audit: "deleteVault/rejected"}},
		{"plain/approve nothing", plain, approve, Facts{}, want{refused: `vault v has no request "r-1"`, audit: "approve/rejected"}},
		{"plain/itemDelete asks the count", plain, itemDelete, Facts{}, want{ask: AskCount}},
		{"plain/itemDelete", plain, itemDelete, Facts{Count: counted}, want{check: func(t *testing.T, d Decision) {
			require.NotNil(t, d.Answer)
			assert.Equal(t, 14*24*time.Hour, d.Answer.Window)
			assert.Equal(t, protocol.AlertSoftDeleted, d.Answer.Alert.Kind)
		}}},
		{"plain/expire", plain, expire, Facts{}, want{}},

		{"mua/disable waits", mua, disable, Facts{}, want{audit: "setSoftDelete/pending approval", check: opened}},
		{"mua/longer is not critical", mua, longer, Facts{}, want{audit: "setSoftDelete/accepted"}},
		{"mua/off waits", mua, muaOff, Facts{}, want{audit: "enableMua/pending approval", check: opened}},
		{"mua/signers wait", mua, setSigners, Facts{}, want{refused: "approver bob has no key", audit: "setAllowedSigners/rejected"}},
		{"mua/tighter guard", mua, guardTighter, Facts{Count: counted}, want{audit: "setMassDeleteGuard/accepted"}},
		{"mua/guard off waits", mua, guardOff, Facts{Count: counted}, want{audit: "setMassDeleteGuard/pending approval", check: opened}},
		{"mua/deleteVault waits", mua, deleteVault, Facts{Items: noItems}, want{audit: "deleteVault/pending approval", check: opened}},
		{"mua/itemDelete asks for its item", mua, itemDelete, Facts{}, want{ask: AskItem}},
		{"mua/itemDelete of a forged item", mua, itemDelete, Facts{Item: &Check{Why: "vault v holds no item vm1 with data to delete"}}, want{refused: "holds no item vm1", audit: "delete/rejected"}},
		{"mua/itemDelete unchecked waits", mua, itemDelete, Facts{Item: &Check{Err: "no answer"}}, want{check: func(t *testing.T, d Decision) {
			assert.Contains(t, d.Answer.Unavailable, "could not check that item vm1 runs")
		}}},
		{"mua/itemDelete waits for approval", mua, itemDelete, Facts{Item: item, Count: counted}, want{audit: "delete/pending approval", check: func(t *testing.T, d Decision) {
			require.NotNil(t, d.Answer.Pending)
			assert.Equal(t, []string{"bob"}, d.Answer.Approvers)
		}}},
		{"pending/approve by bob", pending, approve, Facts{}, want{audit: "setSoftDelete/accepted", check: softDelete(protocol.SoftDeleteDisabled)}},
		{"pending/approve by its requester", pending, cmd(protocol.UpdateApprove, protocol.DecisionRequest{RequestID: "r-1", RequestedBy: "alice"}), Facts{},
			want{refused: "alice requested r-1 and cannot approve it", audit: "approve/rejected"}},
		{"pending/withdrawn", pending, reject, Facts{}, want{audit: "reject/accepted", check: func(t *testing.T, d Decision) {
			assert.Equal(t, protocol.RequestRejected, d.Request.State)
			assert.Equal(t, protocol.SoftDeleteEnabled, d.State.SoftDelete.State)
		}}},
		{"expired/expire", expired, expire, Facts{}, want{audit: "expire/Expired"}},
		{"deletion/approved asks its items", deletion, approve, Facts{}, want{ask: AskItems}},
		{"deletion/approved", deletion, approve, Facts{Items: noItems}, want{audit: "deleteVault/accepted", check: func(t *testing.T, d Decision) { assert.True(t, d.State.Deleted) }}},
		{"deletion/a forged approval costs no listing", deletion, cmd(protocol.UpdateApprove, protocol.DecisionRequest{RequestID: "r-1", RequestedBy: "eve"}), Facts{},
			want{refused: "eve is not an approver", audit: "approve/rejected"}},
		{"told/an item not told is said even when its request is gone", pending, Command{Op: "told", RequestID: "r-7", Failure: "no such workflow"}, Facts{},
			want{refused: "its item could not be told", audit: "delete/rejected"}},

		{"signed/unsigned disable", signed, disable, Facts{}, want{refused: "it is not signed", audit: "setSoftDelete/rejected"}},
		{"signed/unsigned longer", signed, longer, Facts{}, want{audit: "setSoftDelete/accepted"}},
		{"signed/signed disable", signed, signedBy(t, alice, disable, now), Facts{}, want{audit: "setSoftDelete/accepted", check: func(t *testing.T, d Decision) {
			assert.Len(t, d.State.Nonces, 1, "its nonce is remembered")
		}}},
		{"signed/itemDelete asks who sent it", signed, itemDelete, Facts{}, want{ask: AskCaller}},
		{"signed/itemDelete not from its item", signed, itemDelete, Facts{Caller: &Check{Why: "the delete of item vm1 did not come from the item"}},
			want{refused: "did not come from the item", audit: "delete/rejected"}},
		{"signed/unsigned itemDelete", signed, itemDelete, Facts{Caller: item}, want{refused: "it is not signed", audit: "delete/rejected"}},

		{"held/itemDelete is held", held, itemDelete, Facts{Count: counted}, want{check: func(t *testing.T, d Decision) {
			assert.Contains(t, d.Answer.Held, "vault v holds deletes since")
			assert.Zero(t, d.Answer.Window)
		}}},
		{"held/released itemDelete", withReleased(held, now), cmd(protocol.UpdateItemDelete, protocol.ItemDeleteRequest{ItemID: "vm1", At: now, ReceivedAt: now.Add(-time.Minute)}),
			Facts{}, want{check: func(t *testing.T, d Decision) { assert.Empty(t, d.Answer.Held) }}},
		{"held/clear", held, clearHold, Facts{}, want{audit: "clearMassDeleteHold/accepted", check: func(t *testing.T, d Decision) {
			assert.True(t, d.State.MassDelete.HeldSince.IsZero())
		}}},

		{"deleted/setSoftDelete", deleted, longer, Facts{}, want{refused: "vault v has been deleted"}},
		{"deleted/deleteVault again", deleted, deleteVault, Facts{}, want{}},
		{"deleted/itemDelete", deleted, itemDelete, Facts{}, want{refused: "has been deleted"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := c.facts
			f.Now = now
			d, err := Decide(c.st, c.c, f)
			if c.want.refused != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), c.want.refused)
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, c.want.ask, d.Ask)
			if c.want.ask != "" {
				return
			}
			if c.want.audit != "" {
				require.Greater(t, len(d.State.Audit), len(c.st.Audit), "the command is audited")
				last := d.State.Audit[len(d.State.Audit)-1]
				assert.Equal(t, c.want.audit, last.Operation+"/"+last.Outcome)
			} else {
				assert.Len(t, d.State.Audit, len(c.st.Audit), "nothing is audited")
			}
			if strings.HasSuffix(c.want.audit, "/rejected") {
				require.NotEmpty(t, d.State.Outbox, "a refusal is alerted")
				assert.Equal(t, protocol.AlertCriticalRejected, d.State.Outbox[len(d.State.Outbox)-1].Kind)
			}
			if c.want.check != nil {
				c.want.check(t, d)
			}
		})
	}
}

// TestDecideNeverChangesTheStateItIsGiven: the workflow keeps a decision's
// state or drops it (a decision that waits for a fact), so Decide must
// leave its input alone.
func TestDecideNeverChangesTheStateItIsGiven(t *testing.T) {
	now := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	st := VaultState{ID: "v", SoftDelete: protocol.DefaultSoftDeleteSettings(),
		Mua:        MuaSettings{Enabled: true, Approvers: []string{"alice", "bob"}, ApprovalWindow: "24h0m0s"},
		Requests:   []protocol.MuaRequest{{RequestID: "r-1", Operation: protocol.UpdateDeleteVault, RequestedBy: "alice", State: protocol.RequestPending, ExpiresAt: now.Add(time.Hour)}},
		Audit:      []protocol.AuditEntry{{Operation: "first"}},
		Items:      ItemCount{HoldingData: 3, At: now},
		MassDelete: MassDeleteState{Recent: []DeleteSlot{{Start: now.Truncate(10 * time.Second), Count: 3}}},
	}
	before, err := json.Marshal(st)
	require.NoError(t, err)
	for _, c := range []Command{
		{Op: protocol.UpdateApprove, Payload: protocol.DecisionRequest{RequestID: "r-1", RequestedBy: "bob"}},
		{Op: protocol.UpdateReject, Payload: protocol.DecisionRequest{RequestID: "r-1", RequestedBy: "alice"}},
		{Op: protocol.UpdateSetSoftDelete, Payload: protocol.SetSoftDeleteRequest{State: protocol.SoftDeleteDisabled, RequestedBy: "alice"}},
		{Op: "expire"},
		{Op: protocol.UpdateItemDelete, Payload: protocol.ItemDeleteRequest{ItemID: "vm1", RequestedBy: "alice", At: now}},
	} {
		for _, f := range []Facts{{Now: now}, {Now: now.Add(2 * time.Hour), Items: &[]protocol.ListedItem{}}, {Now: now, Item: &Check{}}} {
			_, _ = Decide(st, c, f)
			after, err := json.Marshal(st)
			require.NoError(t, err)
			require.JSONEq(t, string(before), string(after), "%s changed the state it was given", c.Op)
		}
	}
}

// signedBy is c with its payload signed by k, as the starter sends it.
func signedBy(t *testing.T, k *signingtest.Key, c Command, now time.Time) Command {
	b, err := signing.Sign(k.Signer, c.Op, protocol.VaultWorkflowID("v"), c.Payload, now)
	require.NoError(t, err)
	c.Input = b
	return c
}

func withReleased(st VaultState, now time.Time) VaultState {
	st.MassDelete.ReleasedUntil = now
	return st
}
