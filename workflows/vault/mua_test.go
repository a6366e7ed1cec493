package vault

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"recoveryvault/internal/signing"
	"recoveryvault/workflows/protocol"
)

func TestChangeMuaRules(t *testing.T) {
	off := MuaSettings{}
	on := MuaSettings{Enabled: true, Approvers: []string{"alice", "bob"}, ApprovalWindow: "24h0m0s"}
	no := false
	cases := map[string]struct {
		cur     MuaSettings
		req     protocol.EnableMuaRequest
		want    MuaSettings
		refusal string
	}{
		"enable":                     {off, protocol.EnableMuaRequest{Approvers: []string{"alice", "bob"}, ApprovalWindow: "24h"}, on, ""},
		"enable with default window": {off, protocol.EnableMuaRequest{Approvers: []string{"alice", " bob "}}, on, ""},
		"change the window only":     {on, protocol.EnableMuaRequest{ApprovalWindow: "2h"}, MuaSettings{true, []string{"alice", "bob"}, "2h0m0s"}, ""},
		"turn off":                   {on, protocol.EnableMuaRequest{Enabled: &no}, off, ""},
		"no approvers":               {off, protocol.EnableMuaRequest{ApprovalWindow: "24h"}, off, "needs approvers"},
		"approver named twice":       {off, protocol.EnableMuaRequest{Approvers: []string{"alice", "alice"}}, off, `approvers: "alice" is named twice`},
		"empty approver":             {off, protocol.EnableMuaRequest{Approvers: []string{"alice", ""}}, off, `approvers: "" is not a name`},
		"anonymous approver":         {off, protocol.EnableMuaRequest{Approvers: []string{"anonymous"}}, off, "is not a name"},
		"window not a duration":      {off, protocol.EnableMuaRequest{Approvers: []string{"alice"}, ApprovalWindow: "a day"}, off, `approvalWindow "a day" is not a duration`},
		"window too short":           {off, protocol.EnableMuaRequest{Approvers: []string{"alice"}, ApprovalWindow: "30s"}, off, "from 1m0s to 30d 0h 0m"},
		"window too long":            {off, protocol.EnableMuaRequest{Approvers: []string{"alice"}, ApprovalWindow: "721h"}, off, "is not a duration from"},
		"off when already off":       {off, protocol.EnableMuaRequest{Enabled: &no}, off, "already off"},
		"off with approvers":         {on, protocol.EnableMuaRequest{Enabled: &no, Approvers: []string{"eve"}}, on, "send it without approvers"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ChangeMua("vault1", c.cur, c.req)
			if c.refusal != "" {
				assert.ErrorContains(t, err, c.refusal)
				assert.Equal(t, c.cur, got, "a refusal changes nothing")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, c.want, got)
		})
	}
}

func TestWhatIsCritical(t *testing.T) {
	def := protocol.DefaultSoftDeleteSettings()
	with := func(state protocol.SoftDeleteState, days int) protocol.SoftDeleteSettings {
		s := def
		s.State, s.RetentionDays = state, days
		return s
	}
	soft := map[string]struct {
		next     protocol.SoftDeleteSettings
		critical bool
	}{
		"disable soft delete":  {with(protocol.SoftDeleteDisabled, 14), true},
		"shorten retention":    {with(protocol.SoftDeleteEnabled, 14), true},
		"lengthen retention":   {with(protocol.SoftDeleteEnabled, 60), false},
		"always on":            {with(protocol.SoftDeleteAlwaysOn, 30), false},
		"change reminder only": {protocol.SoftDeleteSettings{State: protocol.SoftDeleteEnabled, RetentionDays: 30, PurgeReminder: "72h0m0s"}, false},
	}
	cur := with(protocol.SoftDeleteEnabled, 30)
	for name, c := range soft {
		assert.Equal(t, c.critical, CriticalSoftDeleteChange(cur, c.next), name)
	}
	on := MuaSettings{Enabled: true, Approvers: []string{"alice", "bob"}, ApprovalWindow: "24h0m0s"}
	mua := map[string]struct {
		cur, next MuaSettings
		critical  bool
	}{
		"turn on":          {MuaSettings{}, on, false},
		"turn off":         {on, MuaSettings{}, true},
		"change approvers": {on, MuaSettings{true, []string{"mallory"}, "24h0m0s"}, true},
		"change window":    {on, MuaSettings{true, []string{"alice", "bob"}, "1m0s"}, true},
		"same again":       {on, on, false},
	}
	for name, c := range mua {
		assert.Equal(t, c.critical, CriticalMuaChange(c.cur, c.next), name)
	}
}

func TestCheckDecision(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	mua := MuaSettings{Enabled: true, Approvers: []string{"alice", "bob"}, ApprovalWindow: "24h0m0s"}
	pending := protocol.MuaRequest{RequestID: "r-1", RequestedBy: "alice", State: protocol.RequestPending, ExpiresAt: now.Add(time.Hour)}
	expired := pending
	expired.ExpiresAt = now
	approved := pending
	approved.State = protocol.RequestApproved
	cases := map[string]struct {
		r       protocol.MuaRequest
		by      string
		approve bool
		refusal string
	}{
		"another approver approves":          {pending, "bob", true, ""},
		"the requester cannot approve":       {pending, "alice", true, "alice requested r-1 and cannot approve it"},
		"a stranger cannot approve":          {pending, "mallory", true, "mallory is not an approver of vault vault1: its approvers are alice, bob"},
		"anonymous cannot approve":           {pending, signing.Anonymous, true, "name yourself in requestedBy"},
		"an expired request":                 {expired, "bob", true, "request r-1 expired at 2026-11-25T10:00:00Z"},
		"a decided request":                  {approved, "bob", true, "request r-1 is Approved, not pending"},
		"an approver rejects":                {pending, "bob", false, ""},
		"the requester withdraws":            {pending, "alice", false, ""},
		"a stranger cannot reject":           {pending, "mallory", false, "mallory is not an approver"},
		"a non-approver withdraws their own": {protocol.MuaRequest{RequestID: "r-2", RequestedBy: "mallory", State: protocol.RequestPending, ExpiresAt: now.Add(time.Hour)}, "mallory", false, ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			err := CheckDecision("vault1", mua, c.r, c.by, c.approve, now)
			if c.refusal == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, c.refusal)
		})
	}
}

func TestDecidedRequestsAreBoundedAndPendingOnesKept(t *testing.T) {
	v := &vault{}
	for i := range 60 {
		state := protocol.RequestRejected
		if i == 0 || i == 30 {
			state = protocol.RequestPending
		}
		v.st.Requests = append(v.st.Requests, protocol.MuaRequest{RequestID: "r-" + string(rune('A'+i)), State: state})
	}
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	// Approved deletes: one its item has not carried out yet, within its
	// window; one carried out; one whose window has ended.
	v.st.Requests[1] = protocol.MuaRequest{RequestID: "r-awaited", State: protocol.RequestApproved, Operation: string(protocol.OpDelete), ExpiresAt: now.Add(time.Hour)}
	v.st.Requests[2] = protocol.MuaRequest{RequestID: "r-done", State: protocol.RequestApproved, Operation: string(protocol.OpDelete), ExpiresAt: now.Add(time.Hour), CarriedOut: true}
	v.st.Requests[3] = protocol.MuaRequest{RequestID: "r-late", State: protocol.RequestApproved, Operation: string(protocol.OpDelete), ExpiresAt: now}
	v.st.Requests = trimRequests(v.st.Requests, now)
	require.Len(t, v.st.Requests, maxClosedRequests+3)
	assert.Equal(t, "r-A", v.st.Requests[0].RequestID, "a pending request is never dropped")
	assert.Equal(t, protocol.RequestPending, v.st.Requests[0].State)
	assert.Equal(t, "r-awaited", v.st.Requests[1].RequestID, "an approved delete its item has yet to carry out is kept")
	assert.Equal(t, "r-"+string(rune('A'+9)), v.st.Requests[2].RequestID, "the oldest decided ones go first, carried out or past their window")
}

func TestApprovalsAwaitingTheirItemsAreBoundedToo(t *testing.T) {
	now := time.Date(2026, 12, 3, 10, 0, 0, 0, time.UTC)
	v := &vault{}
	for i := range maxPendingRequests + 5 {
		v.st.Requests = append(v.st.Requests, protocol.MuaRequest{RequestID: fmt.Sprintf("r-%d", i), State: protocol.RequestApproved,
			Operation: string(protocol.OpDelete), ExpiresAt: now.Add(time.Hour)})
	}
	v.st.Requests = trimRequests(v.st.Requests, now)
	require.Len(t, v.st.Requests, maxPendingRequests)
	assert.Equal(t, "r-5", v.st.Requests[0].RequestID, "the oldest approvals its items never carried out go first")
}

func TestCheckRequester(t *testing.T) {
	mua := MuaSettings{Enabled: true, Approvers: []string{"alice"}, ApprovalWindow: "24h0m0s"}
	assert.NoError(t, CheckRequester("vault1", mua, "mallory"))
	assert.ErrorContains(t, CheckRequester("vault1", mua, signing.Anonymous), "name yourself in requestedBy")
	assert.ErrorContains(t, CheckRequester("vault1", mua, "System"), "name yourself in requestedBy")
	assert.ErrorContains(t, CheckRequester("vault1", mua, " Alice"), "is the only approver of vault vault1")
}
