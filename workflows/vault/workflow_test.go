package vault_test

import (
	"context"
	"encoding/json"
	"errors"
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
	"go.temporal.io/sdk/activity"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"

	"recoveryvault/activities"
	"recoveryvault/workflows/protocol"
	. "recoveryvault/workflows/vault"
)

func TestChangeSoftDeleteRules(t *testing.T) {
	def := protocol.DefaultSoftDeleteSettings()
	alwaysOn := def
	alwaysOn.State = protocol.SoftDeleteAlwaysOn
	cases := map[string]struct {
		cur     protocol.SoftDeleteSettings
		req     protocol.SetSoftDeleteRequest
		want    protocol.SoftDeleteSettings
		refusal string
	}{
		"disable":                    {def, protocol.SetSoftDeleteRequest{State: protocol.SoftDeleteDisabled}, protocol.SoftDeleteSettings{State: protocol.SoftDeleteDisabled, RetentionDays: 14, PurgeReminder: "48h0m0s"}, ""},
		"always on":                  {def, protocol.SetSoftDeleteRequest{State: protocol.SoftDeleteAlwaysOn}, alwaysOn, ""},
		"always on cannot disable":   {alwaysOn, protocol.SetSoftDeleteRequest{State: protocol.SoftDeleteDisabled}, alwaysOn, "AlwaysOn, which is irreversible: it cannot be set to Disabled"},
		"always on cannot go back":   {alwaysOn, protocol.SetSoftDeleteRequest{State: protocol.SoftDeleteEnabled}, alwaysOn, "cannot be set to Enabled"},
		"always on keeps retention":  {alwaysOn, protocol.SetSoftDeleteRequest{RetentionDays: 90}, protocol.SoftDeleteSettings{State: protocol.SoftDeleteAlwaysOn, RetentionDays: 90, PurgeReminder: "48h0m0s"}, ""},
		"retention too short":        {def, protocol.SetSoftDeleteRequest{RetentionDays: 13}, def, "retentionDays 13 is out of bounds: soft-deleted data is kept 14 to 180 days"},
		"retention too long":         {def, protocol.SetSoftDeleteRequest{RetentionDays: 181}, def, "out of bounds"},
		"unknown state":              {def, protocol.SetSoftDeleteRequest{State: "Off"}, def, `state "Off" is not a soft-delete state`},
		"bad reminder":               {def, protocol.SetSoftDeleteRequest{PurgeReminder: "soon"}, def, "purgeReminder"},
		"reminder":                   {def, protocol.SetSoftDeleteRequest{PurgeReminder: "72h"}, protocol.SoftDeleteSettings{State: protocol.SoftDeleteEnabled, RetentionDays: 14, PurgeReminder: "72h0m0s"}, ""},
		"empty request changes none": {def, protocol.SetSoftDeleteRequest{}, def, ""},
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
	listed := func(id string, state protocol.State, deadline time.Time) protocol.ListedItem {
		return protocol.ListedItem{WorkflowID: protocol.WorkflowID("vault1", id), ProtectionState: string(state), DeferredDeleteTime: deadline, Running: true}
	}
	err := DeleteVaultRefusal("vault1", []protocol.ListedItem{
		listed("vm1", protocol.SoftDeleted, deadline),
		listed("vm2", protocol.Purged, time.Time{}),
		listed("db1", protocol.ProtectionStopped, time.Time{}),
	})
	require.Error(t, err)
	assert.Equal(t, "vault vault1 cannot be deleted: it holds 1 soft-deleted item: vm1 (purge scheduled for 2026-12-08T10:00:00Z); "+
		"it holds 2 items with backup data: db1 (ProtectionStopped), vm2 (Protected); a vault can be deleted once all its items are purged", err.Error(),
		"a running item whose purge has not finished still holds data")
	assert.NoError(t, DeleteVaultRefusal("vault1", nil))

	// A vault of many items names the first ones and counts the rest.
	var many []protocol.ListedItem
	for i := range 1000 {
		many = append(many, listed(fmt.Sprintf("vm%04d", i), protocol.Protected, time.Time{}))
	}
	err = DeleteVaultRefusal("vault1", many)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "it holds 1000 items with backup data: vm0000 (Protected), ")
	assert.Contains(t, err.Error(), "vm0019 (Protected) and 980 more (starter list --vault shows them all)")
	assert.Less(t, len(err.Error()), 2000)
}

type VaultSuite struct {
	suite.Suite
	testsuite.WorkflowTestSuite
	env     *testsuite.TestWorkflowEnvironment
	running []protocol.ListedItem
	alerts  []protocol.Alert
	updates int
	// holding is what visibility counts of the vault's items with data;
	// counted, how many times the vault asked.
	holding, counted int
	// notifierDownUntil fails every alert's delivery until then;
	// flakyUntil, the description of items named "flaky...".
	notifierDownUntil, flakyUntil time.Time
	// incarnations are the items' first run IDs, by workflow ID.
	incarnations map[string]string
	// asking are the AskVault activities the items run, as the server
	// describes them: each itemDelete the test sends as an item would.
	asking []string
}

// itemRun is the run of every item of the vault suite.
const itemRun = "item-run"

func TestVaultSuite(t *testing.T) { suite.Run(t, new(VaultSuite)) }

func (s *VaultSuite) SetupTest() {
	s.env = s.NewTestWorkflowEnvironment()
	s.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: protocol.VaultWorkflowID("vault1")})
	s.running, s.alerts, s.holding, s.counted, s.notifierDownUntil, s.flakyUntil = nil, nil, 0, 0, time.Time{}, time.Time{}
	s.asking = nil
	var a *activities.Activities
	s.env.OnActivity(a.CountVaultItems, mock.Anything, mock.Anything).Return(
		func(_ ctxT, _ string) (int, error) { s.counted++; return s.holding, nil }).Maybe()
	s.env.OnActivity(a.ListVaultItems, mock.Anything, mock.Anything).Return(
		func(_ ctxT, _ string) ([]protocol.ListedItem, error) { return s.running, nil }).Maybe()
	s.env.OnActivity(a.Notify, mock.Anything, mock.Anything).Return(
		func(_ ctxT, al protocol.Alert) error {
			if s.env.Now().Before(s.notifierDownUntil) {
				return errors.New("webhook answered 503")
			}
			s.alerts = append(s.alerts, al)
			return nil
		}).Maybe()
	// Items named "forged..." do not exist, those named "unreachable..."
	// cannot be described (the server does not answer), nor those named
	// "flaky..." until flakyUntil; the others run with no
	// incarnation unless the test gives them one. The vault itself was
	// continued as new, for tests that carry its state.
	s.incarnations = map[string]string{}
	s.env.OnActivity(a.DescribeRun, mock.Anything, mock.Anything, mock.Anything).Return(
		func(_ ctxT, id, _ string) (protocol.RunInfo, error) {
			switch {
			case id == protocol.VaultWorkflowID("vault1"):
				return protocol.RunInfo{WorkflowType: protocol.VaultWorkflowType, TaskQueue: protocol.TaskQueue, ContinuedAsNew: true}, nil
			case strings.HasPrefix(id, protocol.WorkflowID("vault1", "forged")):
				return protocol.RunInfo{}, nil
			case strings.HasPrefix(id, protocol.WorkflowID("vault1", "unreachable")),
				strings.HasPrefix(id, protocol.WorkflowID("vault1", "flaky")) && s.env.Now().Before(s.flakyUntil):
				return protocol.RunInfo{}, errors.New("frontend did not answer")
			}
			return protocol.RunInfo{WorkflowType: protocol.WorkflowType, Running: true, FirstRunID: s.incarnations[id], RunID: itemRun, Asking: s.asking}, nil
		}).Maybe()
}

func (s *VaultSuite) at(d time.Duration, f func()) { s.env.RegisterDelayedCallback(f, d) }

// nudge gives the vault a workflow task, with a signal it does not read.
func (s *VaultSuite) nudge() { s.env.SignalWorkflow("nudge", nil) }

func (s *VaultSuite) update(name string, arg any, failed *error) {
	s.updates++
	s.env.UpdateWorkflow(name, name+string(rune('a'+s.updates)), &testsuite.TestUpdateCallback{
		OnAccept:   func() {},
		OnReject:   func(err error) { *failed = err },
		OnComplete: func(_ any, err error) { *failed = err },
	}, arg)
}

func (s *VaultSuite) status() VaultStatus {
	v, err := s.env.QueryWorkflow(protocol.QueryVaultStatus)
	s.Require().NoError(err)
	var st VaultStatus
	s.Require().NoError(v.Get(&st))
	return st
}

func (s *VaultSuite) TestDeleteVaultRefusedWithSoftDeletedItemsAndAllowedAfterTheirPurge() {
	deadline := time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)
	var refusedErr, acceptedErr error
	// What the items themselves show, each confirmed running.
	s.running = []protocol.ListedItem{{WorkflowID: protocol.WorkflowID("vault1", "vm1"), ProtectionState: string(protocol.SoftDeleted), DeferredDeleteTime: deadline, Running: true}}
	s.at(2*time.Minute, func() { s.update(protocol.UpdateDeleteVault, protocol.Request{RequestedBy: "mallory"}, &refusedErr) })
	s.at(3*time.Minute, func() {
		s.ErrorContains(refusedErr, "vm1 (purge scheduled for 2026-12-08T10:00:00Z)")
		s.Require().Len(s.alerts, 1)
		s.Equal(protocol.AlertCriticalRejected, s.alerts[0].Kind)
		s.Equal("mallory", s.alerts[0].RequestedBy)
		s.running = nil // vm1 purged and completed
	})
	s.at(5*time.Minute, func() { s.update(protocol.UpdateDeleteVault, protocol.Request{RequestedBy: "alice"}, &acceptedErr) })
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

func (s *VaultSuite) TestAlwaysOnIsIrreversibleAndEveryRefusalIsAuditedAndAlerted() {
	var errOn, errOff, errBack, errShort error
	s.at(time.Minute, func() {
		s.update(protocol.UpdateSetSoftDelete, protocol.SetSoftDeleteRequest{State: protocol.SoftDeleteAlwaysOn, RequestedBy: "alice"}, &errOn)
	})
	s.at(2*time.Minute, func() {
		s.update(protocol.UpdateSetSoftDelete, protocol.SetSoftDeleteRequest{State: protocol.SoftDeleteDisabled, RequestedBy: "mallory"}, &errOff)
		s.update(protocol.UpdateSetSoftDelete, protocol.SetSoftDeleteRequest{State: protocol.SoftDeleteEnabled, RequestedBy: "mallory"}, &errBack)
		s.update(protocol.UpdateSetSoftDelete, protocol.SetSoftDeleteRequest{RetentionDays: 7, RequestedBy: "mallory"}, &errShort)
	})
	s.at(3*time.Minute, func() {
		s.NoError(errOn)
		s.ErrorContains(errOff, "irreversible")
		s.ErrorContains(errBack, "irreversible")
		s.ErrorContains(errShort, "14 to 180 days")
		st := s.status()
		s.Equal(protocol.SoftDeleteAlwaysOn, st.SoftDelete.State)
		var rejected int
		for _, e := range st.Audit {
			if e.Outcome == protocol.OutcomeRejected && e.RequestedBy == "mallory" {
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

// TestAVaultOnALockedStoreCannotDisableSoftDelete: the storage would keep
// the data anyway, so Disabled would only promise a purge that fails.
func (s *VaultSuite) TestAVaultOnALockedStoreCannotDisableSoftDelete() {
	var errOff, errLonger error
	s.at(time.Minute, func() {
		s.update(protocol.UpdateSetSoftDelete, protocol.SetSoftDeleteRequest{State: protocol.SoftDeleteDisabled, RequestedBy: "mallory"}, &errOff)
		s.update(protocol.UpdateSetSoftDelete, protocol.SetSoftDeleteRequest{RetentionDays: 30, RequestedBy: "alice"}, &errLonger)
	})
	s.at(2*time.Minute, func() {
		s.ErrorContains(errOff, "vault vault1 keeps its data on a store with object lock")
		s.ErrorContains(errOff, "soft delete cannot be Disabled there")
		s.NoError(errLonger)
		st := s.status()
		s.Equal(protocol.SoftDeleteEnabled, st.SoftDelete.State)
		s.Equal(30, st.SoftDelete.RetentionDays)
		s.Len(s.alerts, 1, "the refusal is alerted")
		s.env.CancelWorkflow()
	})
	s.env.RegisterWorkflowWithOptions(NewVault(protocol.Settings{StoreLocks: true}), workflow.RegisterOptions{Name: "LockedVault"})
	s.env.ExecuteWorkflow("LockedVault", VaultInput{VaultID: "vault1"})
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the vault ran to the last check")
}

// TestAVaultDisabledBeforeItsStoreLockedSoftDeletes: the storage keeps
// the data for the window anyway, so a delete is not a purge at once.
func (s *VaultSuite) TestAVaultDisabledBeforeItsStoreLockedSoftDeletes() {
	var answer protocol.VaultAnswer
	var err error
	s.at(time.Minute, func() {
		s.itemDelete("delete", protocol.ItemDeleteRequest{ItemID: "vm1", RequestedBy: "mallory", Window: protocol.WindowInputs{ItemDays: 14}}, &answer, &err)
	})
	s.at(2*time.Minute, func() {
		s.Require().NoError(err)
		s.False(answer.Disabled, "not purged at once")
		s.Equal(14*day, answer.Window)
		s.Require().NotNil(answer.Alert)
		s.Equal(protocol.AlertSoftDeleted, answer.Alert.Kind)
		s.env.CancelWorkflow()
	})
	s.env.SetContinuedExecutionRunID("previous-run")
	s.env.RegisterWorkflowWithOptions(NewVault(protocol.Settings{StoreLocks: true}), workflow.RegisterOptions{Name: protocol.VaultWorkflowType})
	s.env.ExecuteWorkflow(protocol.VaultWorkflowType, VaultInput{VaultID: "vault1", State: &VaultState{SoftDelete: protocol.SoftDeleteSettings{State: protocol.SoftDeleteDisabled, RetentionDays: 14, PurgeReminder: "48h0m0s"}}})
	s.True(temporal.IsCanceledError(s.env.GetWorkflowError()), "the vault ran to the last check: %v", s.env.GetWorkflowError())
}

func (s *VaultSuite) TestVaultStartInputCarryingStateIsRefused() {
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1", State: &VaultState{SoftDelete: protocol.SoftDeleteSettings{State: protocol.SoftDeleteDisabled}}})
	s.ErrorContains(s.env.GetWorkflowError(), `"state" is carried only by the workflow's own continue-as-new`)
}

// Items and their vault settings, in the item suite.

// TestWebhookAlertsAreRetriedUntilDelivered posts alerts to a real HTTP
// server on 127.0.0.1 that fails the first delivery.
func TestWebhookAlertsAreRetriedUntilDelivered(t *testing.T) {
	var mu sync.Mutex
	var bodies []protocol.Alert
	calls := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		var a protocol.Alert
		if err := json.NewDecoder(r.Body).Decode(&a); err != nil || r.Header.Get("Content-Type") != "application/json" {
			http.Error(w, "bad", http.StatusBadRequest)
			return
		}
		bodies = append(bodies, a)
	}))
	defer srv.Close()

	var ts testsuite.WorkflowTestSuite
	env := ts.NewTestWorkflowEnvironment()
	env.RegisterActivityWithOptions(func(ctx context.Context, a protocol.Alert) error {
		return activities.WebhookNotifier{URL: srv.URL}.Notify(ctx, a)
	}, activity.RegisterOptions{Name: protocol.ActivityNotify})
	queue := []protocol.Alert{{Kind: protocol.AlertSoftDeleted, VaultID: "vault1", ItemID: "vm1", RequestedBy: "mallory"}}
	env.ExecuteWorkflow(func(ctx workflow.Context) error {
		s := protocol.StartAlertSender(ctx, &queue)
		return workflow.Await(ctx, s.Drained)
	})
	require.NoError(t, env.GetWorkflowError())
	mu.Lock()
	assert.Equal(t, 2, calls, "the failed delivery was retried")
	require.Len(t, bodies, 1)
	assert.Equal(t, "mallory", bodies[0].RequestedBy)
	assert.Equal(t, protocol.AlertSoftDeleted, bodies[0].Kind)
	mu.Unlock()

	err := activities.WebhookNotifier{URL: "http://127.0.0.1:1/none"}.Notify(t.Context(), protocol.Alert{})
	assert.Error(t, err, "an unreachable webhook is an error, to be retried")
}

// carriedAfter runs a vault of 100,000 items (as visibility counts them)
// through deletes of distinct items, in waves of 500 a minute, and returns
// what it carries into continue-as-new and the deletes it let through.
func (s *VaultSuite) carriedAfter(deletes int) (carried []byte, through int) {
	s.SetupTest()
	s.holding = 100_000
	answers := make([]protocol.VaultAnswer, deletes)
	errs := make([]error, deletes)
	for wave := 0; wave*500 < deletes; wave++ {
		s.at(time.Duration(wave+1)*time.Minute, func() {
			for i := wave * 500; i < min(deletes, (wave+1)*500); i++ {
				s.itemDelete(fmt.Sprintf("d-%d", i), protocol.ItemDeleteRequest{ItemID: fmt.Sprintf("vm%06d", i), RequestedBy: "alice"}, &answers[i], &errs[i])
			}
		})
	}
	s.at(time.Duration(deletes/500+2)*time.Minute, func() {
		s.Equal(5000, s.status().MassDeleteGuard.Threshold, "5% of 100,000 items")
		s.env.SetContinueAsNewSuggested(true)
		s.nudge()
	})
	s.env.ExecuteWorkflow(Vault, VaultInput{VaultID: "vault1"})
	var can *workflow.ContinueAsNewError
	s.Require().ErrorAs(s.env.GetWorkflowError(), &can)
	for i := range deletes {
		s.Require().NoError(errs[i])
		if answers[i].Held == "" && answers[i].Window > 0 {
			through++
		}
	}
	return can.Input.GetPayloads()[0].GetData(), through
}

// TestAVaultOfAHundredThousandItemsCarriesTheSameWhateverItsDeletes: the
// vault keeps no list of its items, and its guard counts deletes in a fixed
// number of slots, so what it carries across continue-as-new does not grow
// with its items or with a burst of their deletes.
func (s *VaultSuite) TestAVaultOfAHundredThousandItemsCarriesTheSameWhateverItsDeletes() {
	few, fewThrough := s.carriedAfter(20)
	many, manyThrough := s.carriedAfter(1_200)
	s.Equal(20, fewThrough)
	s.Equal(1_200, manyThrough, "all within the threshold of 5,000")
	s.Less(len(many), 4<<10, "far below Temporal's 2 MB payload limit: %s", many)
	withoutSlots := func(data []byte) (VaultInput, string) {
		var in VaultInput
		s.Require().NoError(json.Unmarshal(data, &in))
		s.Require().NotNil(in.State)
		s.Equal(100_000, in.State.Items.HoldingData)
		s.LessOrEqual(len(in.State.MassDelete.Recent), 61, "at most a window's slots, however many deletes")
		st := *in.State
		st.MassDelete.Recent, st.Items.At = nil, time.Time{}
		out, err := json.Marshal(st)
		s.Require().NoError(err)
		return in, string(out)
	}
	fewIn, fewRest := withoutSlots(few)
	manyIn, manyRest := withoutSlots(many)
	s.Equal(fewRest, manyRest, "1,200 deletes carry nothing more than 20 do, but the counts of their slots")
	s.Equal(20, fewIn.State.MassDelete.Recent[0].Count)
	s.Len(manyIn.State.MassDelete.Recent, 3, "three waves, three slots")
}
