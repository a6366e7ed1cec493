package item_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/mock"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/testsuite"
	"go.temporal.io/sdk/workflow"
	"pgregory.net/rapid"

	"recoveryvault/activities"
	. "recoveryvault/workflows/item"
	"recoveryvault/workflows/protocol"
	"recoveryvault/workflows/vault"
)

// A step of the model-based test: what happens to the item, then how long
// passes before the next step.
type step struct {
	kind string // "signal", "update", "malformed", "burst", "continueAsNew"
	op   protocol.Operation
	// burst are signals delivered in one workflow task.
	burst []protocol.Operation
	wait  time.Duration
}

func (s step) String() string {
	switch s.kind {
	case "burst":
		return fmt.Sprintf("burst%v+%s", s.burst, s.wait)
	case "continueAsNew":
		return "continueAsNew+" + s.wait.String()
	}
	return fmt.Sprintf("%s %s+%s", s.kind, s.op, s.wait)
}

var (
	signalOps = []protocol.Operation{protocol.OpStop, protocol.OpDelete, protocol.OpUndelete, protocol.OpResume}
	updateOps = []protocol.Operation{protocol.OpStop, protocol.OpDelete, protocol.OpUndelete, protocol.OpResume, protocol.OpBackupNow, protocol.OpRestore}
	// Waits: a moment, an hour, past a daily backup, up to and past the
	// 14-day deadline. Each is longer than checkAfter.
	waits = []time.Duration{2 * time.Minute, time.Hour, 25 * time.Hour, 13*day + 23*time.Hour, 15 * day}
)

// checkAfter is how long after a step the model checks what it did.
const checkAfter = time.Minute

func stepGen() *rapid.Generator[step] {
	return rapid.Custom(func(t *rapid.T) step {
		s := step{kind: rapid.SampledFrom([]string{"signal", "update", "update", "malformed", "burst", "continueAsNew"}).Draw(t, "kind")}
		switch s.kind {
		case "signal":
			s.op = rapid.SampledFrom(signalOps).Draw(t, "signal")
		case "update":
			s.op = rapid.SampledFrom(updateOps).Draw(t, "update")
		case "malformed":
			s.op = rapid.SampledFrom(signalOps).Draw(t, "malformed")
		case "burst":
			s.burst = rapid.SliceOfN(rapid.SampledFrom(signalOps), 2, 4).Draw(t, "burst")
		}
		s.wait = rapid.SampledFrom(waits).Draw(t, "wait")
		return s
	})
}

// modelItem is what the test knows the item must be: the reference model,
// and what it has shown so far.
type modelItem struct {
	state    protocol.State
	deadline time.Time // the deadline shown while soft-deleted
	points   []string  // recovery points shown at the last check
	// pointsState is the state at that check.
	pointsState protocol.State
	// deletedAt is when the model entered SoftDeleted: the deadline is 14
	// days later, the vault's default window.
	deletedAt time.Time
}

// TestModelOfAnItemsLife drives an item through random sequences of
// signals, updates, malformed payloads, bursts of signals in one task, clock
// advances across backups and deadlines, and continue-as-new, in the
// time-skipping environment, and checks it against a small model and these
// invariants: data is purged only by the timer, at or after the deadline the
// item showed, never after an undelete that arrived first; the deadline
// moves only by undelete; no recovery point vanishes while stopped or
// soft-deleted; restore is refused exactly while soft-deleted; every
// accepted operation is in the audit.
func TestModelOfAnItemsLife(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		steps := rapid.SliceOfN(stepGen(), 1, 12).Draw(rt, "steps")
		runModel(rt, steps)
	})
}

// modelHarness is one item in a time-skipping environment, run after run.
type modelHarness struct {
	t     fataler
	suite testsuite.WorkflowTestSuite
	env   *testsuite.TestWorkflowEnvironment
	// stored are the points whose data is in the store.
	stored map[string]bool
	root   string
	m      modelItem
	purges []time.Time
	seq    int
	// audit is what the model's own requests must have left in the audit,
	// in order; seen is how many of them the item has shown.
	audit []string
	// waiting holds, by update ID, whether the model expects a refusal;
	// answers what the item said.
	waiting map[string]bool
	mu      sync.Mutex
	answers map[string]error
}

// fataler is a *rapid.T, or a *testing.T for a regression case.
type fataler interface {
	Fatal(args ...any)
	Fatalf(format string, args ...any)
}

// TestModelRegressions replays, step by step, failures the model test found.
func TestModelRegressions(t *testing.T) {
	for name, steps := range map[string][]step{
		// A resume and a delete in one task: the garbage collection the
		// resume started removed a point after the delete had been decided.
		"resume and delete in one task": {
			{kind: "signal", op: protocol.OpUndelete, wait: 15 * day},
			{kind: "update", op: protocol.OpStop, wait: time.Hour},
			{kind: "update", op: protocol.OpRestore, wait: 13*day + 23*time.Hour},
			{kind: "malformed", op: protocol.OpResume, wait: 25 * time.Hour},
			{kind: "burst", burst: []protocol.Operation{protocol.OpResume, protocol.OpDelete}, wait: 2 * time.Minute},
		},
	} {
		t.Run(name, func(t *testing.T) { runModel(t, steps) })
	}
}

func runModel(t fataler, steps []step) {
	root, err := os.MkdirTemp("", "model-store-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(root)
	src := filepath.Join(root, "source")
	if err := os.MkdirAll(src, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "disk.img"), []byte("the data"), 0o600); err != nil {
		t.Fatal(err)
	}
	h := &modelHarness{t: t, stored: map[string]bool{}, root: root, m: modelItem{state: protocol.Protected},
		waiting: map[string]bool{}, answers: map[string]error{}}
	in := ItemInput{VaultID: "vault1", ItemID: "vm1", SourcePath: src, Policy: protocol.Policy{Frequency: "24h", RetentionDays: 30}}
	start := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	continued := false
	for len(steps) > 0 || h.m.state == protocol.SoftDeleted {
		h.newEnv(start, continued)
		next := steps
		var rest []step
		// The first step once the run has started and registered its
		// handlers: the clock runs at wall speed until then.
		at := checkAfter
		for i, s := range next {
			at += time.Millisecond
			h.env.RegisterDelayedCallback(func() { h.apply(s) }, at)
			// Once the step's activities are done (the environment's clock
			// runs at wall speed while activities run, and skips ahead only
			// when none does): the deadline it set is shown.
			h.env.RegisterDelayedCallback(func() { h.check("after " + s.String()) }, at+checkAfter)
			at += s.wait
			if s.kind == "continueAsNew" {
				rest = next[i+1:]
				break
			}
		}
		// After the last step: check, then let a pending deadline pass, and
		// end. A continue-as-new that never comes ends the run too.
		if rest == nil {
			h.env.RegisterDelayedCallback(func() {
				h.check("end")
				if h.m.state != protocol.SoftDeleted {
					h.env.CancelWorkflow()
				}
			}, at+checkAfter)
		}
		h.env.RegisterDelayedCallback(func() {
			h.check("16 days after the last step") // a soft-deleted item is purged by now
			h.env.CancelWorkflow()
		}, at+16*day)
		h.env.ExecuteWorkflow(BackupItem, in)
		err := h.env.GetWorkflowError()
		var can *workflow.ContinueAsNewError
		switch {
		case errors.As(err, &can):
			var carried ItemInput
			if err := converter.GetDefaultDataConverter().FromPayloads(can.Input, &carried); err != nil {
				t.Fatal(err)
			}
			in, start, continued, steps = carried, h.env.Now(), true, rest
			if rest == nil {
				steps = nil
			}
			continue
		case err == nil:
			var final Status
			if err := h.env.GetWorkflowResult(&final); err != nil {
				t.Fatal(err)
			}
			if final.ProtectionState != protocol.Purged {
				t.Fatalf("the workflow completed as %s, not Purged", final.ProtectionState)
			}
			if h.m.state != protocol.Purged {
				h.purged()
			}
		case temporal.IsCanceledError(err):
			if rest != nil {
				t.Fatalf("continue-as-new was suggested, and the item never continued as new")
			}
		default:
			t.Fatalf("the item failed: %v", err)
		}
		break
	}
	if h.m.state != protocol.Purged && len(h.waiting) > len(h.answers) {
		t.Fatalf("updates never answered: %v", h.waiting)
	}
	if h.m.state == protocol.Purged && len(h.purges) != 1 {
		t.Fatalf("purged %d times", len(h.purges))
	}
	if h.m.state != protocol.Purged && len(h.purges) > 0 {
		t.Fatalf("purged at %v, yet the model says %s", h.purges, h.m.state)
	}
}

func (h *modelHarness) newEnv(start time.Time, continued bool) {
	h.env = h.suite.NewTestWorkflowEnvironment()
	h.env.SetStartWorkflowOptions(client.StartWorkflowOptions{ID: protocol.WorkflowID("vault1", "vm1")})
	h.env.SetStartTime(start)
	if continued {
		h.env.SetContinuedExecutionRunID("previous-run")
	}
	// The store is the model's own: which points hold data. The store
	// itself is tested in package store, and with the workflows end to end
	// on real servers.
	var a *activities.Activities
	h.env.OnActivity(a.Backup, mock.Anything, mock.Anything).Return(
		func(_ ctxT, in BackupInput) (BackupResult, error) {
			h.stored[in.Point.ID] = true
			rp := in.Point
			rp.SizeBytes, rp.SHA256 = 8, "model"
			return BackupResult{Point: rp, Files: 1}, nil
		}).Maybe()
	h.env.OnActivity(a.Restore, mock.Anything, mock.Anything).Return(
		func(_ ctxT, in RestoreInput) (RestoreResult, error) {
			if !h.stored[in.Point.ID] {
				h.t.Fatalf("restore of %s, which holds no data", in.Point.ID)
			}
			return RestoreResult{Files: 1, Bytes: 8}, nil
		}).Maybe()
	h.env.OnActivity(a.Collect, mock.Anything, mock.Anything).Return(
		func(_ ctxT, in CollectInput) error {
			for _, id := range in.RecoveryPointIDs {
				delete(h.stored, id)
			}
			return nil
		}).Maybe()
	h.env.OnActivity(a.Report, mock.Anything, mock.Anything).Return(ReportResult{}, nil).Maybe()
	h.env.OnActivity(a.AskVault, mock.Anything, mock.Anything).Return(
		func(_ ctxT, in AskVaultInput) (protocol.VaultAnswer, error) {
			// A vault of default settings, by its own rules.
			now := h.env.Now()
			d, err := vault.Decide(vault.VaultState{ID: in.VaultID, SoftDelete: protocol.DefaultSoftDeleteSettings()},
				vault.Command{Op: protocol.UpdateItemDelete, Payload: in.Request}, vault.Facts{Now: now, Count: &vault.ItemCount{HoldingData: 1, At: now}})
			if err != nil {
				return protocol.VaultAnswer{}, err
			}
			return *d.Answer, nil
		}).Maybe()
	h.env.OnActivity(a.Purge, mock.Anything, mock.Anything).Return(
		func(ctxT, PurgeInput) error {
			clear(h.stored)
			return nil
		}).Maybe()
	// The run continued from is the item's own.
	h.env.OnActivity(a.DescribeRun, mock.Anything, mock.Anything, mock.Anything).Return(
		protocol.RunInfo{WorkflowType: protocol.WorkflowType, TaskQueue: protocol.TaskQueue, ContinuedAsNew: true}, nil).Maybe()
	h.env.SetOnActivityStartedListener(func(info *activityInfo, _ ctxT, _ converter.EncodedValues) {
		if info.ActivityType.Name == protocol.ActivityPurge {
			h.purges = append(h.purges, h.env.Now())
		}
	})
}

func (h *modelHarness) status() Status {
	v, err := h.env.QueryWorkflow(protocol.QueryStatus)
	if err != nil {
		h.t.Fatalf("status: %v", err)
	}
	var st Status
	if err := v.Get(&st); err != nil {
		h.t.Fatal(err)
	}
	return st
}

// apply performs one step and moves the model by it.
func (h *modelHarness) apply(s step) {
	if h.m.state == protocol.Purged {
		return
	}
	h.check("before " + s.String())
	before := h.status()
	switch s.kind {
	case "continueAsNew":
		h.env.SetContinueAsNewSuggested(true)
		// Any message wakes the loop; a malformed one changes nothing.
		h.env.SignalWorkflow(string(protocol.OpStop), "junk")
		return
	case "malformed":
		h.env.SignalWorkflow(string(s.op), "junk")
		return
	case "signal":
		h.env.SignalWorkflow(string(s.op), protocol.Request{RequestedBy: "model"})
		h.expect(s.op, true)
		return
	case "burst":
		for _, op := range s.burst[:len(s.burst)-1] {
			h.env.SignalWorkflowSkippingWorkflowTask(string(op), protocol.Request{RequestedBy: "model"})
		}
		h.env.SignalWorkflow(string(s.burst[len(s.burst)-1]), protocol.Request{RequestedBy: "model"})
		// Signals of one task are applied by name, data-keeping last:
		// the model follows the item's documented order.
		for _, op := range []protocol.Operation{protocol.OpResume, protocol.OpStop, protocol.OpDelete, protocol.OpUndelete} {
			for range count(s.burst, op) {
				h.expect(op, true)
			}
		}
		return
	}
	h.seq++
	var arg any = protocol.Request{RequestedBy: "model"}
	if s.op == protocol.OpRestore {
		if len(before.RecoveryPoints) == 0 {
			return
		}
		// The newest point: garbage collection never takes it.
		rp := before.RecoveryPoints[len(before.RecoveryPoints)-1].ID
		arg = protocol.RestoreRequest{RecoveryPointID: rp, TargetPath: filepath.Join(h.root, fmt.Sprintf("restore-%d", h.seq)), RequestedBy: "model"}
	}
	want := h.expect(s.op, false)
	id := fmt.Sprintf("u-%d", h.seq)
	h.waiting[id] = want
	answered := func(err error) {
		h.mu.Lock()
		defer h.mu.Unlock()
		h.answers[id] = err
	}
	h.env.UpdateWorkflow(string(s.op), id, &testsuite.TestUpdateCallback{
		OnAccept:   func() {},
		OnReject:   answered,
		OnComplete: func(_ any, err error) { answered(err) },
	}, arg)
}

func count(ops []protocol.Operation, op protocol.Operation) int {
	n := 0
	for _, o := range ops {
		if o == op {
			n++
		}
	}
	return n
}

// expect moves the model by op: whether it is refused, and the audit
// entry it leaves.
func (h *modelHarness) expect(op protocol.Operation, signal bool) (refused bool) {
	m := &h.m
	switch op {
	case protocol.OpStop:
		switch m.state {
		case protocol.Protected:
			m.state = protocol.ProtectionStopped
		case protocol.SoftDeleted:
			refused = true
		}
	case protocol.OpDelete:
		if m.state == protocol.Protected || m.state == protocol.ProtectionStopped {
			m.state = protocol.SoftDeleted
			m.deadline, m.deletedAt = time.Time{}, h.env.Now()
		}
	case protocol.OpUndelete:
		if m.state == protocol.SoftDeleted {
			m.state, m.deadline = protocol.ProtectionStopped, time.Time{}
		} else {
			refused = true
		}
	case protocol.OpResume:
		switch m.state {
		case protocol.ProtectionStopped:
			m.state = protocol.Protected
		case protocol.SoftDeleted:
			refused = true
		}
	case protocol.OpBackupNow:
		refused = m.state != protocol.Protected
	case protocol.OpRestore:
		refused = m.state == protocol.SoftDeleted
	}
	// A signal leaves an entry either way; a refused update none.
	switch {
	case !refused:
		h.audit = append(h.audit, string(op)+"/"+protocol.OutcomeAccepted)
	case signal:
		h.audit = append(h.audit, string(op)+"/"+protocol.OutcomeRejected)
	}
	return refused
}

// check compares the item with the model, and the invariants with what the
// item showed before.
func (h *modelHarness) check(when string) {
	if h.m.state == protocol.Purged {
		return
	}
	st := h.status()
	m := &h.m
	if m.state == protocol.SoftDeleted && !m.deadline.IsZero() && (len(h.purges) > 0 || st.ProtectionState == protocol.Purged) {
		// The timer fired: the purge runs (the item still shows
		// SoftDeleted) or is done.
		h.purged()
		return
	}
	if st.ProtectionState != m.state {
		h.t.Fatalf("%s: the item is %s, the model %s", when, st.ProtectionState, m.state)
	}
	if st.ProtectionState == protocol.SoftDeleted {
		deadline, err := time.Parse(time.RFC3339, st.DeferredDeleteTimeInUTC)
		if err != nil {
			h.t.Fatalf("%s: soft-deleted with deadline %q", when, st.DeferredDeleteTimeInUTC)
		}
		if m.deadline.IsZero() {
			// The delete's moment plus the vault's 14 days (the shown time
			// is to the second; the settings read takes a moment).
			if want := m.deletedAt.Add(14 * day); deadline.Before(want.Add(-time.Second)) || deadline.After(want.Add(2*time.Second)) {
				h.t.Fatalf("%s: deadline %v, but a delete at %v gets %v", when, deadline, m.deletedAt, want)
			}
			m.deadline = deadline
		} else if !deadline.Equal(m.deadline) {
			h.t.Fatalf("%s: the deadline moved from %v to %v", when, m.deadline, deadline)
		}
		if h.env.Now().After(deadline.Add(time.Minute)) {
			h.t.Fatalf("%s: still soft-deleted a minute after its deadline %v", when, deadline)
		}
	} else if st.IsScheduledForDeferredDelete || st.DeferredDeleteTimeInUTC != "" {
		h.t.Fatalf("%s: %s with a deadline %q", when, st.ProtectionState, st.DeferredDeleteTimeInUTC)
	}
	var ids []string
	for _, rp := range st.RecoveryPoints {
		ids = append(ids, rp.ID)
	}
	if st.ProtectionState != protocol.Protected && m.pointsState != protocol.Protected {
		for _, id := range m.points {
			if !slices.Contains(ids, id) {
				h.t.Fatalf("%s: recovery point %s vanished while %s", when, id, st.ProtectionState)
			}
		}
	}
	for _, id := range ids {
		if !h.stored[id] {
			h.t.Fatalf("%s: recovery point %s is shown, but its data is not in the store", when, id)
		}
	}
	m.points, m.pointsState = ids, st.ProtectionState
	var mine []string
	for _, e := range st.Audit {
		if e.RequestedBy == "model" {
			mine = append(mine, e.Operation+"/"+e.Outcome)
		}
	}
	// The audit is bounded: a full one may have dropped entries.
	if len(st.Audit) < protocol.MaxAuditEntries && !slices.Equal(mine, h.audit) {
		h.t.Fatalf("%s: the audit has %v from the model's requests, the model %v", when, mine, h.audit)
	}
	h.mu.Lock()
	for id, err := range h.answers {
		if h.waiting[id] != (err != nil) {
			h.mu.Unlock()
			h.t.Fatalf("%s: update %s: the model expected refused=%v, the item answered %v", when, id, h.waiting[id], err)
		}
		delete(h.answers, id)
		delete(h.waiting, id)
	}
	h.mu.Unlock()
	if len(h.purges) > 0 {
		h.t.Fatalf("%s: purged while the item shows %s", when, st.ProtectionState)
	}
}

// purged checks the one purge against the deadline the item showed.
func (h *modelHarness) purged() {
	m := &h.m
	if m.state != protocol.SoftDeleted || m.deadline.IsZero() {
		h.t.Fatalf("purged, but the model is %s with deadline %v", m.state, m.deadline)
	}
	if len(h.purges) != 1 {
		h.t.Fatalf("purged %d times", len(h.purges))
	}
	if h.purges[0].Before(m.deadline) {
		h.t.Fatalf("purged at %v, before the deadline %v", h.purges[0], m.deadline)
	}
	m.state = protocol.Purged
}
