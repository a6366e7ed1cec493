package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

const enableMuaExample = `{"approvers": ["alice", "bob"], "approvalWindow": "24h"}`

// decisionPayload reads approve's or reject's payload, which must name the
// request.
func decisionPayload(name string) func(converter.RawValue) (DecisionRequest, error) {
	return func(raw converter.RawValue) (DecisionRequest, error) {
		var req DecisionRequest
		if err := decodePayload(name, raw, &req, `{"requestId": "r-1", "requestedBy": "bob"}`); err != nil {
			return req, err
		}
		if req.RequestID == "" {
			return req, fmt.Errorf(`%s needs the request's ID: {"requestId": "r-1", "requestedBy": "bob"}`, name)
		}
		return req, nil
	}
}

func decodeItemDelete(raw converter.RawValue) (ItemDeleteRequest, error) {
	var req ItemDeleteRequest
	if err := decodePayload(UpdateItemDelete, raw, &req, `{"itemId": "vm1", "requestedBy": "alice", "at": "2026-12-01T10:00:00Z"}`); err != nil {
		return req, err
	}
	return req, ValidateID("itemId", req.ItemID)
}

func (v *vault) enableMua(ctx workflow.Context, req EnableMuaRequest, input []byte) (VaultStatus, error) {
	if err := v.ready(ctx); err != nil {
		return VaultStatus{}, err
	}
	who := actor{by: requester(req.RequestedBy)}
	next, err := ChangeMua(v.id, v.st.Mua, req)
	if err == nil && next.Enabled {
		err = v.keysOfApprovers(v.st.AllowedSigners, next.Approvers)
	}
	if err != nil {
		v.refuse(ctx, UpdateEnableMua, who, err)
		return VaultStatus{}, refused(err)
	}
	// Every change of multi-user authorization is signed on a vault that
	// requires signatures, turning it on included.
	if who, err = v.signedBy(ctx, UpdateEnableMua, input, who, true); err != nil {
		return VaultStatus{}, err
	}
	if CriticalMuaChange(v.st.Mua, next) {
		summary := "turn multi-user authorization off"
		if next.Enabled {
			summary = next.String()
		}
		req.Signature = Signature{}
		return v.openRequest(ctx, MuaRequest{Operation: UpdateEnableMua, RequestedBy: who.by, Signer: who.signer, Reason: req.Reason, Mua: &req, Summary: summary})
	}
	v.changeMua(ctx, who, next, req.Reason)
	return v.status(), nil
}

// keysOfApprovers refuses approvers who have no key among allowed signers
// text (when set): under signatures they could never approve.
func (v *vault) keysOfApprovers(text string, approvers []string) error {
	if text == "" {
		return nil
	}
	signers, err := parseAllowedSigners(text)
	if err != nil {
		return err
	}
	if missing := unlistedApprovers(signers, approvers); len(missing) > 0 {
		return &Refusal{Message: fmt.Sprintf("vault %s requires signatures, and approver %s has no key in its allowed signers, so could never approve: list their keys first (setAllowedSigners), or name other approvers",
			v.id, strings.Join(missing, ", "))}
	}
	return sharedApproverKeys(signers, approvers)
}

func (v *vault) changeMua(ctx workflow.Context, who actor, next MuaSettings, reason string) {
	detail := next.String() + " (was " + v.st.Mua.String() + ")"
	if reason != "" {
		detail += "; reason: " + reason
	}
	v.st.Mua = next
	v.audit(ctx, UpdateEnableMua, who, OutcomeAccepted, detail)
	if !next.Enabled {
		// Nobody is left to approve what waits.
		v.closePending(ctx, func(MuaRequest) bool { return true }, RequestRejected,
			func(MuaRequest) string { return "multi-user authorization was turned off: send the operation again" })
	}
	v.version++
}

// ready waits until carried state is verified and refuses a deleted vault.
func (v *vault) ready(ctx workflow.Context) error {
	if err := workflow.Await(ctx, func() bool { return v.verified }); err != nil {
		return err
	}
	if v.deleted {
		return refused(fmt.Errorf("vault %s has been deleted", v.id))
	}
	return nil
}

// itemDelete is an item's delete, asked by the item itself: the vault
// refuses it, registers it for approval, or carries it out under its
// settings now (or those of an approved request's time of carrying out),
// records the item as soft-deleted with its deadline, and answers the
// window with the alert that goes out for it.
func (v *vault) itemDelete(ctx workflow.Context, req ItemDeleteRequest) (VaultAnswer, error) {
	if err := v.ready(ctx); err != nil {
		return VaultAnswer{}, err
	}
	who := actor{by: requester(req.RequestedBy)}
	answer := VaultAnswer{Settings: v.st.SoftDelete}
	if req.RequestID == "" && v.st.AllowedSigners != "" {
		// A signed delete read from an item's history and sent here first
		// would take the real delete's nonce.
		why, err := v.askedByItemInTurn(ctx, req.ItemID)
		if err != nil {
			answer.Unavailable = fmt.Sprintf("vault %s could not check that item %s asks it (%s): the item asks again", v.id, req.ItemID, message(err))
			return answer, nil
		}
		if why != "" {
			err := errors.New(why)
			v.refuse(ctx, string(OpDelete), actor{by: who.by, signer: notVerified}, err)
			return VaultAnswer{}, refused(err)
		}
	}
	if req.RequestID == "" {
		signer, err := v.authenticate(ctx, string(OpDelete), WorkflowID(v.id, req.ItemID), req.Input, who.by, true)
		var busy *busyError
		if errors.As(err, &busy) {
			answer.Unavailable = fmt.Sprintf("vault %s is busy: %s", v.id, busy.msg)
			return answer, nil
		}
		if err != nil {
			v.refuse(ctx, string(OpDelete), actor{by: who.by, signer: notVerified}, fmt.Errorf("item %s: %w", req.ItemID, err))
			return VaultAnswer{}, refused(err)
		}
		who.signer = signer
	}
	switch {
	case req.RequestID != "":
		r, err := v.approvedDelete(ctx, req.ItemID, req.RequestID)
		if err != nil {
			return VaultAnswer{}, refused(err)
		}
		who = actor{by: r.RequestedBy, signer: r.Signer}
		answer.RequestedBy = r.RequestedBy
		approver := r.DecidedBy
		if fingerprintOf(r.DecisionSigner) != "" {
			approver = r.DecisionSigner
		}
		answer.Reason = fmt.Sprintf("approved by %s (request %s)", approver, r.RequestID)
		if r.Reason != "" {
			answer.Reason = r.Reason + "; " + answer.Reason
		}
		v.audit(ctx, string(OpDelete), who, OutcomeAccepted,
			fmt.Sprintf("request %s: carried out by item %s", r.RequestID, req.ItemID))
	case v.st.Mua.Enabled:
		// Deletes of items the vault does not hold would only fill its
		// queue of requests.
		isItem, err := v.realItem(ctx, req.ItemID, req.Incarnation)
		// Runs that refused such a delete as forged replay as they ran.
		if err != nil && workflow.GetVersion(ctx, "wait-on-unchecked-item", workflow.DefaultVersion, 1) >= 1 {
			// Nothing took effect: its item sends the same signed request
			// again, which must not count as a replay.
			v.forgetNonce(req.Input)
			answer.Unavailable = fmt.Sprintf("vault %s could not check that item %s runs (%s): the item asks again", v.id, req.ItemID, message(err))
			return answer, nil
		}
		if !isItem {
			err := fmt.Errorf("vault %s holds no item %s with data to delete", v.id, req.ItemID)
			v.refuse(ctx, string(OpDelete), who, err)
			return VaultAnswer{}, refused(err)
		}
		// Each delete waits for an approver anyway: the guard only counts
		// it, and alerts when they come in a burst.
		v.guardDelete(ctx, req.ItemID, who, req.ReceivedAt)
		st, err := v.openRequest(ctx, MuaRequest{
			Operation: string(OpDelete), ItemID: req.ItemID, RequestedBy: who.by, Signer: who.signer, Reason: req.Reason,
			Summary: "delete the backup data of item " + req.ItemID,
		})
		if err != nil {
			return VaultAnswer{}, err
		}
		answer.Pending, answer.Signer = st.Request, who.signer
		answer.Approvers = v.st.Mua.otherApprovers(who.by)
		if v.st.AllowedSigners != "" {
			// The item checks the approval itself, with these keys.
			signers, _ := parseAllowedSigners(v.st.AllowedSigners)
			answer.ApproverKeys = signersFor(signers, answer.Approvers)
		}
		return answer, nil
	}
	answer.Signer = who.signer
	if req.RequestID == "" {
		if why := v.guardDelete(ctx, req.ItemID, who, req.ReceivedAt); why != "" {
			// A held delete took no effect: its item sends the same signed
			// request again, which must not count as a replay.
			v.forgetNonce(req.Input)
			answer.Held = why
			return answer, nil
		}
	}
	// The window's parts a message could shorten are the vault's own: the
	// worker's override is this worker's, and an item's own window is
	// never under the minimum. Any client can send itemDelete.
	w := req.Window
	w.Override = v.settings.window()
	if w.ItemDays != 0 {
		w.ItemDays = max(w.ItemDays, MinSoftDeleteRetentionDays)
	}
	answer.Window, answer.Disabled = w.Window(v.st.SoftDelete)
	// On a store with object lock the storage keeps the data for the window
	// anyway: a vault Disabled before its store locked soft-deletes.
	answer.Disabled = answer.Disabled && !v.settings.StoreLocks
	deadline := req.At.Add(answer.Window)
	if answer.Disabled {
		deadline = req.At
	} else {
		answer.Alert = &Alert{Kind: AlertSoftDeleted, VaultID: v.id, ItemID: req.ItemID, RequestedBy: who.by, Signer: who.signer,
			Time: req.At.UTC(), PurgeTime: deadline.UTC(), Detail: SoftDeletedDetail(deadline)}
	}
	v.version++
	return answer, nil
}

// openRequest records a critical operation as pending approval, changes
// nothing else, and tells the approvers. The same operation asked again by
// the same person while pending gets the same request.
func (v *vault) openRequest(ctx workflow.Context, r MuaRequest) (VaultStatus, error) {
	if err := CheckRequester(v.id, v.st.Mua, r.RequestedBy); err != nil {
		v.refuse(ctx, r.Operation, r.actor(), err)
		return VaultStatus{}, refused(err)
	}
	pending, theirs := 0, 0
	for _, o := range v.st.Requests {
		if o.State != RequestPending {
			continue
		}
		pending++
		if sameIdentity(o.RequestedBy, r.RequestedBy) {
			theirs++
			// An item's delete asked again is the same request; other
			// operations carry payloads that may differ.
			if r.Operation == string(OpDelete) && o.Operation == r.Operation && o.ItemID == r.ItemID {
				st := v.status()
				st.Request = &o
				return st, nil
			}
		}
	}
	var err error
	switch {
	case pending >= maxPendingRequests:
		err = fmt.Errorf("vault %s has %s pending approval: approve or reject some before asking again", v.id, Plural(pending, "request"))
	case theirs >= maxPendingPerRequester:
		err = fmt.Errorf("%s has %s pending approval at vault %s: withdraw some with reject, or wait for their approval", r.RequestedBy, Plural(theirs, "request"), v.id)
	}
	if err != nil {
		v.refuse(ctx, r.Operation, r.actor(), err)
		return VaultStatus{}, refused(err)
	}
	now := workflow.Now(ctx).UTC()
	v.st.RequestSequence++
	r.RequestID = "r-" + strconv.Itoa(v.st.RequestSequence)
	r.State = RequestPending
	r.CreatedAt = now
	r.ExpiresAt = now.Add(v.st.Mua.window())
	r.Detail = pendingDetail(v.st.Mua, r.RequestedBy, r.ExpiresAt)
	v.st.Requests = append(v.st.Requests, r)
	v.audit(ctx, r.Operation, r.actor(), OutcomePending, fmt.Sprintf("request %s: %s; %s", r.RequestID, r.Summary, r.Detail))
	queueAlert(&v.st.Outbox, Alert{
		Kind: AlertApprovalRequested, VaultID: v.id, ItemID: r.ItemID, RequestedBy: r.RequestedBy, Signer: r.Signer, Time: now,
		Detail: fmt.Sprintf("request %s: %s; %s", r.RequestID, r.Summary, r.Detail),
	})
	v.version++
	st := v.status()
	st.Request = &r
	return st, nil
}

func (v *vault) findRequest(id string) int {
	for i, r := range v.st.Requests {
		if r.RequestID == id {
			return i
		}
	}
	return -1
}

// decide approves or rejects a request. An approval carries the operation
// out at once, under the rules as they are now.
func (v *vault) decide(ctx workflow.Context, req DecisionRequest, approve bool, input []byte) (VaultStatus, error) {
	if err := v.ready(ctx); err != nil {
		return VaultStatus{}, err
	}
	op := UpdateReject
	if approve {
		op = UpdateApprove
	}
	// Decisions are always signed on a vault that requires signatures: an
	// approval in another's name is the forgery signatures exist to stop.
	who, err := v.signedBy(ctx, op, input, actor{by: requester(req.RequestedBy)}, true)
	if err != nil {
		return VaultStatus{}, err
	}
	by := who.by
	i := v.findRequest(req.RequestID)
	if i < 0 {
		err := fmt.Errorf("vault %s has no request %q: its status lists the requests it holds", v.id, req.RequestID)
		v.refuse(ctx, op, who, err)
		return VaultStatus{}, refused(err)
	}
	r := v.st.Requests[i]
	err = CheckDecision(v.id, v.st.Mua, r, by, approve, workflow.Now(ctx))
	if key := fingerprintOf(who.signer); err == nil && approve && key != "" && key == fingerprintOf(r.Signer) {
		err = &Refusal{Message: fmt.Sprintf("request %s was signed with key %s, which may not approve it too: a second person must approve", r.RequestID, key)}
	}
	if err != nil {
		v.refuse(ctx, op, who, err)
		return VaultStatus{}, refused(err)
	}
	if !approve {
		detail := "rejected by " + by
		if req.Reason != "" {
			detail += "; reason: " + req.Reason
		}
		v.close(ctx, i, RequestRejected, who, detail)
		return v.statusWith(r.RequestID), nil
	}
	v.close(ctx, i, RequestApproved, who, "approved by "+by)
	if err := v.carryOut(ctx, r, by, input); err != nil {
		// Requests may have moved while this ran: find it again.
		if i := v.findRequest(r.RequestID); i >= 0 {
			v.st.Requests[i].State = RequestFailed
			v.st.Requests[i].Detail = "approved by " + by + " but not carried out: " + err.Error()
		}
		v.refuse(ctx, r.Operation, r.actor(), fmt.Errorf("request %s, approved by %s: %w", r.RequestID, by, err))
		return VaultStatus{}, refused(fmt.Errorf("request %s was approved but not carried out: %w", r.RequestID, err))
	}
	return v.statusWith(r.RequestID), nil
}

// carryOut does what an approved request asked, checked again against the
// vault as it is now: a setting may have changed while it waited. approval
// is the approve update's payload, which an item checks itself.
func (v *vault) carryOut(ctx workflow.Context, r MuaRequest, approver string, approval []byte) error {
	who := r.actor()
	reason := fmt.Sprintf("approved by %s (request %s)", approver, r.RequestID)
	if r.Reason != "" {
		reason = r.Reason + "; " + reason
	}
	switch r.Operation {
	case UpdateSetSoftDelete:
		next, err := ChangeSoftDelete(v.id, v.st.SoftDelete, *r.SoftDelete)
		if err != nil {
			return err
		}
		v.changeSoftDelete(ctx, who, next, reason)
	case UpdateEnableMua:
		next, err := ChangeMua(v.id, v.st.Mua, *r.Mua)
		if err == nil && next.Enabled {
			err = v.keysOfApprovers(v.st.AllowedSigners, next.Approvers)
		}
		if err != nil {
			return err
		}
		v.changeMua(ctx, who, next, reason)
	case UpdateSetAllowedSigners:
		if err := v.keysOfApprovers(r.AllowedSigners.AllowedSigners, v.st.Mua.Approvers); err != nil {
			return err
		}
		v.changeSigners(ctx, who, r.AllowedSigners.AllowedSigners, reason)
	case UpdateSetMassDeleteGuard:
		next, err := ChangeMassDeleteGuard(v.st.Guard, *r.Guard)
		if err != nil {
			return err
		}
		v.changeGuard(ctx, who, next, reason)
	case UpdateClearMassDeleteHold:
		if v.st.MassDelete.HeldSince.IsZero() {
			return fmt.Errorf("vault %s holds no deletes any more", v.id)
		}
		v.clearHold(ctx, who, reason)
	case UpdateDeleteVault:
		if err := v.deletable(ctx); err != nil {
			return err
		}
		if v.deleted {
			return nil
		}
		v.markDeleted(ctx, who, reason)
	case string(OpDelete):
		return v.tellItem(ctx, r, approval)
	default:
		return fmt.Errorf("operation %q cannot be carried out", r.Operation)
	}
	return nil
}

// tellItem sends an approved delete to its item, with the approval as its
// approver signed it: anyone could send that signal, so the item checks the
// signature itself, or on a vault without signers asks here (approvedDelete).
func (v *vault) tellItem(ctx workflow.Context, r MuaRequest, approval []byte) error {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			MaximumAttempts:        5,
			NonRetryableErrorTypes: []string{ErrTypeNoVault},
		},
	})
	payload, _ := json.Marshal(DeleteApproval{RequestID: r.RequestID, Approval: approval})
	in := MessageInput{
		WorkflowID: WorkflowID(v.id, r.ItemID), WorkflowType: WorkflowType, Name: SignalDeleteApproved, Payload: payload,
	}
	if err := workflow.ExecuteActivity(actx, ActivitySignal, in).Get(ctx, nil); err != nil {
		return fmt.Errorf("item %s could not be told: %s", r.ItemID, message(err))
	}
	v.audit(ctx, string(OpDelete), r.actor(), OutcomeAccepted,
		fmt.Sprintf("request %s: item %s told to delete its backup data", r.RequestID, r.ItemID))
	return nil
}

// close decides request i and records it. Decided requests are kept in the
// order of their decision, so the one just decided is the last to go.
func (v *vault) close(ctx workflow.Context, i int, state RequestState, who actor, detail string) {
	closed := v.st.Requests[i]
	v.st.Requests = append(slices.Delete(v.st.Requests, i, i+1), closed)
	r := &v.st.Requests[len(v.st.Requests)-1]
	r.State, r.DecidedBy, r.DecisionSigner, r.DecidedAt, r.Detail = state, who.by, who.signer, workflow.Now(ctx).UTC(), detail
	op := map[RequestState]string{RequestApproved: UpdateApprove, RequestRejected: UpdateReject, RequestExpired: "expire"}[state]
	outcome := OutcomeAccepted
	if state == RequestExpired {
		outcome = string(RequestExpired)
	}
	v.audit(ctx, op, who, outcome, fmt.Sprintf("request %s (%s, asked by %s): %s", r.RequestID, r.Summary, r.RequestedBy, detail))
	v.trimRequests(workflow.Now(ctx))
	v.version++
}

// trimRequests keeps every pending request, the approved deletes their
// items have not carried out yet within their windows (an approver deciding
// a burst of requests must not drop one whose item is about to confirm it;
// the newest maxPendingRequests of them), and the last decided ones.
func (v *vault) trimRequests(now time.Time) {
	awaited := func(r MuaRequest) bool {
		return r.State == RequestApproved && r.Operation == string(OpDelete) && !r.CarriedOut && now.Before(r.ExpiresAt)
	}
	awaiting, closed := 0, 0
	for _, r := range v.st.Requests {
		switch {
		case r.State == RequestPending:
		case awaited(r):
			awaiting++
		default:
			closed++
		}
	}
	keep := v.st.Requests[:0]
	for _, r := range v.st.Requests {
		switch {
		case r.State == RequestPending:
		case awaited(r) && awaiting > maxPendingRequests:
			awaiting--
			continue
		case awaited(r):
		case closed > maxClosedRequests:
			closed--
			continue
		}
		keep = append(keep, r)
	}
	v.st.Requests = keep
}

func (v *vault) statusWith(requestID string) VaultStatus {
	st := v.status()
	if i := v.findRequest(requestID); i >= 0 {
		r := v.st.Requests[i]
		st.Request = &r
	}
	return st
}

// armExpiry keeps one durable timer for the earliest pending request.
func (v *vault) armExpiry(ctx workflow.Context) {
	var next time.Time
	for _, r := range v.st.Requests {
		if r.State == RequestPending && (next.IsZero() || r.ExpiresAt.Before(next)) {
			next = r.ExpiresAt
		}
	}
	if v.expiryTimer != nil && !v.expiryAt.Equal(next) {
		v.cancelExpiry()
		v.expiryTimer, v.cancelExpiry = nil, nil
	}
	if !next.IsZero() && v.expiryTimer == nil {
		v.expiryAt = next
		v.expiryTimer, v.cancelExpiry = startTimer(ctx, next.Sub(workflow.Now(ctx)), "approval expiry")
	}
}

// expireRequests closes every request whose window has passed unapproved.
func (v *vault) expireRequests(ctx workflow.Context) {
	now := workflow.Now(ctx)
	v.closePending(ctx, func(r MuaRequest) bool { return !now.Before(r.ExpiresAt) }, RequestExpired,
		func(r MuaRequest) string {
			return "expired unapproved at " + r.ExpiresAt.UTC().Format(time.RFC3339) + ": nothing changed"
		})
}

// closePending closes, as the system, the pending requests that match.
// Closing trims the list, so each is found again by its ID.
func (v *vault) closePending(ctx workflow.Context, match func(MuaRequest) bool, state RequestState, detail func(MuaRequest) string) {
	var ids []string
	for _, r := range v.st.Requests {
		if r.State == RequestPending && match(r) {
			ids = append(ids, r.RequestID)
		}
	}
	for _, id := range ids {
		if i := v.findRequest(id); i >= 0 {
			v.close(ctx, i, state, actor{by: system}, detail(v.st.Requests[i]))
		}
	}
}
