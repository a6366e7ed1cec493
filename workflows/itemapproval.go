package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"recoveryvault/activities"
)

// maxAwaitingApproval bounds the delete requests an item remembers.
const maxAwaitingApproval = 20

// requestApproval registers a delete at the vault, whose multi-user
// authorization makes it wait for an approver. Nothing else changes.
func (w *item) requestApproval(ctx workflow.Context, by, reason string) (Decision, error) {
	if by == anonymous {
		refusal := &Refusal{Message: fmt.Sprintf(
			"deletes of item %s need approval at vault %s: name yourself in requestedBy, so that someone else can approve", w.in.ItemID, w.in.VaultID)}
		w.audit(ctx, string(OpDelete), by, OutcomeRejected, refusal.Message)
		return Decision{}, refusal
	}
	payload, _ := json.Marshal(ItemDeleteRequest{ItemID: w.in.ItemID, RequestedBy: by, Reason: reason})
	in := activities.MessageInput{
		WorkflowID: VaultWorkflowID(w.in.VaultID), WorkflowType: VaultWorkflowType, Name: UpdateRequestItemDelete, Payload: payload,
	}
	var raw json.RawMessage
	var r MuaRequest
	err := workflow.ExecuteActivity(withWorkflowCall(ctx), acts.Update, in).Get(ctx, &raw)
	if err == nil {
		err = json.Unmarshal(raw, &r)
	}
	if err != nil {
		refusal := &Refusal{Message: fmt.Sprintf("delete of item %s not registered for approval at vault %s: %s; nothing changed",
			w.in.ItemID, w.in.VaultID, message(err))}
		w.audit(ctx, string(OpDelete), by, OutcomeRejected, refusal.Message)
		return Decision{}, refusal
	}
	// A request carried out while this answer was on its way is not
	// awaited again.
	if !slices.Contains(w.st.AwaitingApproval, r.RequestID) && !slices.Contains(w.st.ApprovalsUsed, r.RequestID) {
		w.st.AwaitingApproval = keepLast(append(w.st.AwaitingApproval, r.RequestID), maxAwaitingApproval)
	}
	w.audit(ctx, string(OpDelete), by, OutcomePending, fmt.Sprintf("request %s at vault %s: %s", r.RequestID, w.in.VaultID, r.Detail))
	w.version++
	return Decision{Next: w.st.ProtectionState, NoOp: true, Pending: &r}, nil
}

// serveApproval carries out an approved delete once the vault confirms the
// approval: the signal alone proves nothing, anyone can send it. Whatever
// can be refused without asking the vault is refused at once, so a flood
// of forged approvals never holds up the loop.
func (w *item) serveApproval(ctx workflow.Context, raw converter.RawValue) {
	var a DeleteApproval
	err := decodePayload(SignalDeleteApproved, raw, &a, `{"requestId": "r-1"}`)
	switch {
	case err != nil:
		err = fmt.Errorf("malformed signal, nothing changed: %w", err)
	case a.RequestID == "":
		err = errors.New(`no requestId, nothing changed: send {"requestId": "r-1"}`)
	case !slices.Contains(w.st.AwaitingApproval, a.RequestID):
		err = fmt.Errorf("item %s awaits no approval of request %q, nothing changed: it acts only on deletes it registered itself, once", w.in.ItemID, clip([]byte(a.RequestID)))
	case w.checking[a.RequestID]:
		err = fmt.Errorf("request %s is being checked already, nothing changed", a.RequestID)
	case w.st.ProtectionState != Protected && w.st.ProtectionState != ProtectionStopped:
		err = fmt.Errorf("item %s is %s: request %s has nothing to delete", w.in.ItemID, VisibleState(w.st.ProtectionState), a.RequestID)
	}
	if err != nil {
		w.audit(ctx, SignalDeleteApproved, anonymous, OutcomeRejected, err.Error())
		w.version++
		return
	}
	// Held until the delete is done: the same approval sent again
	// meanwhile, to another coroutine serving signals, is refused.
	w.checking[a.RequestID] = true
	defer delete(w.checking, a.RequestID)
	r, err := w.checkApproval(ctx, a.RequestID)
	if err != nil {
		w.audit(ctx, SignalDeleteApproved, anonymous, OutcomeRejected, err.Error())
		w.version++
		return
	}
	reason := fmt.Sprintf("approved by %s (request %s)", r.DecidedBy, r.RequestID)
	if r.Reason != "" {
		reason = r.Reason + "; " + reason
	}
	if _, err := w.applyApproved(ctx, OpDelete, r.RequestedBy, reason, &r); err == nil {
		// Every delete this item waited for is done by this one.
		w.st.ApprovalsUsed = keepLast(append(w.st.ApprovalsUsed, w.st.AwaitingApproval...), maxAwaitingApproval)
		w.st.AwaitingApproval = nil
	}
}

func keepLast(ids []string, n int) []string {
	if len(ids) > n {
		return ids[len(ids)-n:]
	}
	return ids
}

// withWorkflowCall has the options of a short call to another workflow of
// ours: a few retries, and none when it is not running.
func withWorkflowCall(ctx workflow.Context) workflow.Context {
	return workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			MaximumAttempts:        5,
			NonRetryableErrorTypes: []string{activities.ErrTypeNoVault},
		},
	})
}

// queryWorkflow answers a query of a running workflow of the given type,
// through an activity, so the answer is recorded in the history.
func queryWorkflow(ctx workflow.Context, workflowID, workflowType, query string, into any) error {
	var raw json.RawMessage
	err := workflow.ExecuteActivity(withWorkflowCall(ctx), acts.QueryRunning, workflowID, workflowType, query).Get(ctx, &raw)
	if err != nil {
		return err
	}
	return json.Unmarshal(raw, into)
}
