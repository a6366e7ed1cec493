package workflows_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/mock"
	"github.com/stretchr/testify/require"
	"github.com/stretchr/testify/suite"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"recoveryvault/activities"
	. "recoveryvault/workflows"
)

func TestChangeSoftDeleteRules(t *testing.T) {
	def := DefaultSoftDeleteSettings()
	alwaysOn := def
	alwaysOn.State = SoftDeleteAlwaysOn
	cases := map[string]struct {
		cur     SoftDeleteSettings
		req     SetSoftDeleteRequest
		want    SoftDeleteSettings
		refusal string
	}{
		"disable":                    {def, SetSoftDeleteRequest{State: SoftDeleteDisabled}, SoftDeleteSettings{SoftDeleteDisabled, 14, "48h0m0s"}, ""},
		"always on":                  {def, SetSoftDeleteRequest{State: SoftDeleteAlwaysOn}, alwaysOn, ""},
		"always on cannot disable":   {alwaysOn, SetSoftDeleteRequest{State: SoftDeleteDisabled}, alwaysOn, "AlwaysOn, which is irreversible: it cannot be set to Disabled"},
		"always on cannot go back":   {alwaysOn, SetSoftDeleteRequest{State: SoftDeleteEnabled}, alwaysOn, "cannot be set to Enabled"},
		"always on keeps retention":  {alwaysOn, SetSoftDeleteRequest{RetentionDays: 90}, SoftDeleteSettings{SoftDeleteAlwaysOn, 90, "48h0m0s"}, ""},
		"retention too short":        {def, SetSoftDeleteRequest{RetentionDays: 13}, def, "retentionDays 13 is out of bounds: soft-deleted data is kept 14 to 180 days"},
		"retention too long":         {def, SetSoftDeleteRequest{RetentionDays: 181}, def, "out of bounds"},
		"unknown state":              {def, SetSoftDeleteRequest{State: "Off"}, def, `soft-delete state "Off" is not known`},
		"bad reminder":               {def, SetSoftDeleteRequest{PurgeReminder: "soon"}, def, "purgeReminder"},
		"reminder":                   {def, SetSoftDeleteRequest{PurgeReminder: "72h"}, SoftDeleteSettings{SoftDeleteEnabled, 14, "72h0m0s"}, ""},
		"empty request changes none": {def, SetSoftDeleteRequest{}, def, ""},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := ChangeSoftDelete("vault1", c.cur, c.req)
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

func TestDeleteVaultRefusalNamesSoftDeletedItemsAndTheirPurgeTimes(t *testing.T) {
	deadline := time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)
	err := DeleteVaultRefusal("vault1", map[string]VaultItem{
		"vm1": {ProtectionState: SoftDeleted, DeferredDeleteTime: deadline},
		"vm2": {ProtectionState: Purged},
		"db1": {ProtectionState: ProtectionStopped},
	})
	require.Error(t, err)
	assert.Equal(t, "vault vault1 cannot be deleted: it holds 1 soft-deleted item: vm1 (purge scheduled for 2026-12-08T10:00:00Z); "+
		"it holds 1 item with backup data: db1 (ProtectionStopped); a vault can be deleted once all its items are purged", err.Error())
	assert.NoError(t, DeleteVaultRefusal("vault1", map[string]VaultItem{"vm2": {ProtectionState: Purged}}))
	assert.NoError(t, DeleteVaultRefusal("vault1", nil))
}

type VaultSuite struct {
	suite.Suite
	testsuite.WorkflowTestSuite
	env     *testsuite.TestWorkflowEnvironment
	running []ListedItem
	alerts  []Alert
	updates int
	// incarnations are the items' first run IDs, by workflow ID.
	incarnations map[string]string
}

func TestVaultSuite(t *testing.T) { suite.Run(t, new(VaultSuite)) }

func (s *VaultSuite) SetupTest() {
	s.env = s.NewTestWorkflowEnvironment()
	s.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: VaultWorkflowID("vault1")})
	s.running, s.alerts = nil, nil
	var a *activities.Activities
	s.env.OnActivity(a.ListVaultItems, mock.Anything, mock.Anything).Return(
		func(_ ctxT, _ string) ([]ListedItem, error) { return s.running, nil }).Maybe()
	s.env.OnActivity(a.Notify, mock.Anything, mock.Anything).Return(
		func(_ ctxT, al Alert) error { s.alerts = append(s.alerts, al); return nil }).Maybe()
	// Items named "forged..." do not exist; the others run with no
	// incarnation unless the test gives them one. The vault itself was
	// continued as new, for tests that carry its state.
	s.incarnations = map[string]string{}
	s.env.OnActivity(a.DescribeRun, mock.Anything, mock.Anything, mock.Anything).Return(
		func(_ ctxT, id, _ string) (RunInfo, error) {
			switch {
			case id == VaultWorkflowID("vault1"):
				return RunInfo{WorkflowType: VaultWorkflowType, ContinuedAsNew: true}, nil
			case strings.HasPrefix(id, WorkflowID("vault1", "forged")):
				return RunInfo{}, nil
			}
			return RunInfo{WorkflowType: WorkflowType, Running: true, FirstRunID: s.incarnations[id]}, nil
		}).Maybe()
}

func (s *VaultSuite) at(d time.Duration, f func()) { s.env.RegisterDelayedCallback(f, d) }

func (s *VaultSuite) report(item string, state State, deadline time.Time, seq int) {
	s.env.SignalWorkflow(SignalItemChanged, ItemReport{ItemID: item, VaultItem: VaultItem{ProtectionState: state, DeferredDeleteTime: deadline, Sequence: seq}})
}

func (s *VaultSuite) update(name string, arg any, failed *error) {
	s.updates++
	s.env.UpdateWorkflow(name, name+string(rune('a'+s.updates)), &testsuite.TestUpdateCallback{
		OnAccept:   func() {},
		OnReject:   func(err error) { *failed = err },
		OnComplete: func(_ any, err error) { *failed = err },
	}, arg)
}

func (s *VaultSuite) status() VaultStatus {
	v, err := s.env.QueryWorkflow(QueryVaultStatus)
	s.Require().NoError(err)
	var st VaultStatus
	s.Require().NoError(v.Get(&st))
	return st
}

func (s *VaultSuite) TestDeleteVaultRefusedWithSoftDeletedItemsAndAllowedAfterTheirPurge() {
	deadline := time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)
	var refusedErr, acceptedErr error
	s.at(time.Minute, func() {
		s.report("vm1", Protected, time.Time{}, 1)
		s.report("vm1", SoftDeleted, deadline, 2)
		s.report("vm2", Purged, time.Time{}, 3)
	})
	s.at(2*time.Minute, func() {
		st := s.status()
		s.Equal(map[State]int{SoftDeleted: 1, Purged: 1}, st.Counts)
		s.Equal([]VaultItemStatus{{ItemID: "vm1", DeferredDeleteTimeInUTC: "2026-12-08T10:00:00Z"}}, st.Items[SoftDeleted])
		s.update(UpdateDeleteVault, Request{RequestedBy: "mallory"}, &refusedErr)
	})
	s.at(3*time.Minute, func() {
		s.ErrorContains(refusedErr, "vm1 (purge scheduled for 2026-12-08T10:00:00Z)")
		s.Require().Len(s.alerts, 1)
		s.Equal(AlertCriticalRejected, s.alerts[0].Kind)
		s.Equal("mallory", s.alerts[0].RequestedBy)
		s.report("vm1", SoftDeleted, deadline, 1) // a late, older report changes nothing
	})
	s.at(4*time.Minute, func() { s.report("vm1", Purged, time.Time{}, 4) })
	s.at(5*time.Minute, func() { s.update(UpdateDeleteVault, Request{RequestedBy: "alice"}, &acceptedErr) })
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})

	s.Require().True(s.env.IsWorkflowCompleted())
	s.Require().NoError(s.env.GetWorkflowError())
	s.NoError(acceptedErr)
	var final VaultStatus
	s.Require().NoError(s.env.GetWorkflowResult(&final))
	s.True(final.Deleted)
	last := final.Audit[len(final.Audit)-1]
	s.Equal("deleteVault/alice/accepted", last.Operation+"/"+last.RequestedBy+"/"+last.Outcome)
}

// TestForgedReportsCannotDeleteAVaultWithRunningItems: a client can send an
// itemChanged signal saying an item was purged; visibility, which only the
// item can write, still shows it running with data.
func (s *VaultSuite) TestForgedReportsCannotDeleteAVaultWithRunningItems() {
	s.running = []ListedItem{{WorkflowID: WorkflowID("vault1", "vm1"), ProtectionState: "Protected", WorkflowStatus: "Running"}}
	var err error
	s.at(time.Minute, func() { s.report("vm1", Purged, time.Time{}, 99) })
	s.at(2*time.Minute, func() { s.update(UpdateDeleteVault, nil, &err) })
	ran := false
	s.at(3*time.Minute, func() {
		ran = true
		s.ErrorContains(err, "vm1 (Protected)")
		s.False(s.status().Deleted)
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.True(ran)
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()))
}

func (s *VaultSuite) TestAlwaysOnIsIrreversibleAndEveryRefusalIsAuditedAndAlerted() {
	var errOn, errOff, errBack, errShort error
	s.at(time.Minute, func() {
		s.update(UpdateSetSoftDelete, SetSoftDeleteRequest{State: SoftDeleteAlwaysOn, RequestedBy: "alice"}, &errOn)
	})
	s.at(2*time.Minute, func() {
		s.update(UpdateSetSoftDelete, SetSoftDeleteRequest{State: SoftDeleteDisabled, RequestedBy: "mallory"}, &errOff)
		s.update(UpdateSetSoftDelete, SetSoftDeleteRequest{State: SoftDeleteEnabled, RequestedBy: "mallory"}, &errBack)
		s.update(UpdateSetSoftDelete, SetSoftDeleteRequest{RetentionDays: 7, RequestedBy: "mallory"}, &errShort)
	})
	s.at(3*time.Minute, func() {
		s.NoError(errOn)
		s.ErrorContains(errOff, "irreversible")
		s.ErrorContains(errBack, "irreversible")
		s.ErrorContains(errShort, "14 to 180 days")
		st := s.status()
		s.Equal(SoftDeleteAlwaysOn, st.SoftDelete.State)
		var rejected int
		for _, e := range st.Audit {
			if e.Outcome == OutcomeRejected && e.RequestedBy == "mallory" {
				rejected++
			}
		}
		s.Equal(3, rejected, "every refusal is in the audit")
		s.Len(s.alerts, 3, "every refused critical operation raises an alert")
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the vault ran to the last check")
}

func (s *VaultSuite) TestMalformedReportIsAuditedAndChangesNothing() {
	s.at(time.Minute, func() {
		s.env.SignalWorkflow(SignalItemChanged, "text")
		s.env.SignalWorkflow(SignalItemChanged, map[string]any{"itemId": "../x", "protectionState": "Protected"})
		s.report("vm1", Protected, time.Time{}, 1)
	})
	s.at(2*time.Minute, func() {
		st := s.status()
		s.Equal(map[State]int{Protected: 1}, st.Counts)
		s.Equal(OutcomeRejected, st.Audit[0].Outcome)
		s.Equal(OutcomeRejected, st.Audit[1].Outcome)
		s.Equal("registerItem", st.Audit[2].Operation)
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the vault ran to the last check")
}

func (s *VaultSuite) TestVaultStartInputCarryingStateIsRefused() {
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1", State: &VaultState{SoftDelete: SoftDeleteSettings{State: SoftDeleteDisabled}}})
	s.ErrorContains(s.env.GetWorkflowError(), `"state" is carried only by the workflow's own continue-as-new`)
}

// Items and their vault settings, in the item suite.

// TestAnItemProtectedAgainUnderAPurgedOnesIDIsTracked: its reports start a
// new sequence, which the vault accepts because the incarnation differs.
func (s *VaultSuite) TestAnItemProtectedAgainUnderAPurgedOnesIDIsTracked() {
	ran := false
	s.incarnations[WorkflowID("vault1", "vm1")] = "run-a"
	s.at(time.Minute, func() {
		s.env.SignalWorkflow(SignalItemChanged, ItemReport{ItemID: "vm1", Incarnation: "run-a", VaultItem: VaultItem{ProtectionState: Purged, Sequence: 7}})
	})
	s.at(2*time.Minute, func() {
		s.incarnations[WorkflowID("vault1", "vm1")] = "run-b"
		s.env.SignalWorkflow(SignalItemChanged, ItemReport{ItemID: "vm1", Incarnation: "run-b", VaultItem: VaultItem{ProtectionState: Protected, Sequence: 1}})
	})
	s.at(3*time.Minute, func() {
		ran = true
		s.Equal(map[State]int{Protected: 1}, s.status().Counts)
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.True(ran)
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()))
}

// TestWebhookAlertsAreRetriedUntilDelivered posts alerts to a real HTTP
// server on 127.0.0.1 that fails the first delivery.
func TestWebhookAlertsAreRetriedUntilDelivered(t *testing.T) {
	var mu sync.Mutex
	var bodies []Alert
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		var a Alert
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		bodies = append(bodies, a)
	}))
	defer srv.Close()

	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterActivity(&activities.Activities{Notifier: activities.WebhookNotifier{URL: srv.URL}})
	queue := []Alert{{Kind: AlertSoftDeleted, VaultID: "vault1", ItemID: "vm1", RequestedBy: "mallory"}}
	env.ExecuteWorkflow(func(ctx workflow.Context) error {
		s := StartAlertSender(ctx, &queue)
		return workflow.Await(ctx, s.Drained)
	})
	require.NoError(t, env.GetWorkflowError())
	mu.Lock()
	assert.Equal(t, 2, calls, "the failed delivery was retried")
	require.Len(t, bodies, 1)
	assert.Equal(t, "mallory", bodies[0].RequestedBy)
	assert.Equal(t, AlertSoftDeleted, bodies[0].Kind)
	mu.Unlock()

	err := activities.WebhookNotifier{URL: "http://127.0.0.1:1/none"}.Notify(t.Context(), Alert{})
	assert.Error(t, err, "an unreachable webhook is an error, to be retried")
}

// TestForgedReportsForItemsThatDoNotExistAreNotCarried: a flood of them
// must not grow the vault's state.
func (s *VaultSuite) TestForgedReportsForItemsThatDoNotExistAreNotCarried() {
	ran := false
	s.at(time.Minute, func() {
		for i := range 20 {
			s.report(fmt.Sprintf("forged%d", i), SoftDeleted, time.Now(), 1)
		}
		s.env.SignalWorkflow(SignalItemChanged, ItemReport{ItemID: "vm1", Incarnation: "not-its-run", VaultItem: VaultItem{ProtectionState: Protected, Sequence: 1}})
		s.report("vm2", Protected, time.Time{}, 1)
	})
	s.at(2*time.Minute, func() {
		ran = true
		st := s.status()
		s.Equal(map[State]int{Protected: 1}, st.Counts, "only the real item vm2 is tracked")
		s.Equal([]VaultItemStatus{{ItemID: "vm2"}}, st.Items[Protected])
		rejected := 0
		for _, e := range st.Audit {
			if e.Outcome == OutcomeRejected {
				rejected++
			}
		}
		s.Equal(21, rejected, "each forged report is audited")
		s.env.CancelWorkflow()
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	s.True(ran)
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()))
}

// TestReportsCarriedUncheckedAreCheckedFirst: reports that arrived just
// before continue-as-new are carried unchecked, and checked by the next run.
func (s *VaultSuite) TestReportsCarriedUncheckedAreCheckedFirst() {
	s.env.SetContinuedExecutionRunID("previous-run")
	ran := false
	s.at(time.Minute, func() {
		ran = true
		st := s.status()
		s.Equal(map[State]int{Protected: 1}, st.Counts, "the real item is registered, the forged one dropped")
		s.Equal([]VaultItemStatus{{ItemID: "vm2"}}, st.Items[Protected])
		s.env.CancelWorkflow()
	})
	carried := VaultState{SoftDelete: DefaultSoftDeleteSettings(), Unchecked: []ItemReport{
		{ItemID: "forged1", VaultItem: VaultItem{ProtectionState: SoftDeleted, Sequence: 1}},
		{ItemID: "vm2", VaultItem: VaultItem{ProtectionState: Protected, Sequence: 1}},
	}}
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1", State: &carried})
	s.True(ran)
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()))
}
