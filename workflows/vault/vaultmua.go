package vault

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

	"recoveryvault/internal/signing"
	"recoveryvault/workflows/protocol"
)

const enableMuaExample = `{"approvers": ["alice", "bob"], "approvalWindow": "24h"}`

// decisionPayload reads approve's or reject's payload, which must name the
// request.
func decisionPayload(name string) func(converter.RawValue) (protocol.DecisionRequest, error) {
	return func(raw converter.RawValue) (protocol.DecisionRequest, error) {
		var req protocol.DecisionRequest
		if err := protocol.DecodePayload(name, raw, &req, `{"requestId": "r-1", "requestedBy": "bob"}`); err != nil {
			return req, err
		}
		if req.RequestID == "" {
			return req, fmt.Errorf(`%s needs the request's ID: {"requestId": "r-1", "requestedBy": "bob"}`, name)
		}
		return req, nil
	}
}

func decodeItemDelete(raw converter.RawValue) (protocol.ItemDeleteRequest, error) {
	var req protocol.ItemDeleteRequest
	if err := protocol.DecodePayload(protocol.UpdateItemDelete, raw, &req, `{"itemId": "vm1", "requestedBy": "alice", "at": "2026-12-01T10:00:00Z"}`); err != nil {
		return req, err
	}
	return req, protocol.ValidateID("itemId", req.ItemID)
}

func (v *vault) enableMua(ctx workflow.Context, req protocol.EnableMuaRequest, input []byte) (VaultStatus, error) {
	if err := v.ready(ctx); err != nil {
		return VaultStatus{}, err
	}
	who := actor{by: protocol.Requester(req.RequestedBy)}
	next, err := ChangeMua(v.id, v.st.Mua, req)
	if err == nil && next.Enabled {
		err = v.keysOfApprovers(v.st.AllowedSigners, next.Approvers)
	}
	if err != nil {
		v.refuse(ctx, protocol.UpdateEnableMua, who, err)
		return VaultStatus{}, protocol.Refused(err)
	}
	// Every change of multi-user authorization is signed on a vault that
	// requires signatures, turning it on included.
	if who, err = v.signedBy(ctx, protocol.UpdateEnableMua, input, who, true); err != nil {
		return VaultStatus{}, err
	}
	if CriticalMuaChange(v.st.Mua, next) {
		summary := "turn multi-user authorization off"
		if next.Enabled {
			summary = next.String()
		}
		req.Signature = signing.Signature{}
		return v.openRequest(ctx, protocol.MuaRequest{Operation: protocol.UpdateEnableMua, RequestedBy: who.by, Signer: who.signer, Reason: req.Reason, Mua: &req, Summary: summary})
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
	signers, err := signing.ParseAllowedSigners(text)
	if err != nil {
		return err
	}
	if missing := signing.UnlistedApprovers(signers, approvers); len(missing) > 0 {
		return &protocol.Refusal{Message: fmt.Sprintf("vault %s requires signatures, and approver %s has no key in its allowed signers, so could never approve: list their keys first (setAllowedSigners), or name other approvers",
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
	v.audit(ctx, protocol.UpdateEnableMua, who, protocol.OutcomeAccepted, detail)
	if !next.Enabled {
		// Nobody is left to approve what waits.
		v.closePending(ctx, func(protocol.MuaRequest) bool { return true }, protocol.RequestRejected,
			func(protocol.MuaRequest) string {
				return "multi-user authorization was turned off: send the operation again"
			})
	}
	v.version++
}

// ready waits until carried state is verified and refuses a deleted vault.
func (v *vault) ready(ctx workflow.Context) error {
	if err := workflow.Await(ctx, func() bool { return v.verified }); err != nil {
		return err
	}
	if v.deleted {
		return protocol.Refused(fmt.Errorf("vault %s has been deleted", v.id))
	}
	return nil
}

// itemDelete is an item's delete, asked by the item itself: the vault
// refuses it, registers it for approval, or carries it out under its
// settings now (or those of an approved request's time of carrying out),
// records the item as soft-deleted with its deadline, and answers the
// window with the alert that goes out for it.
func (v *vault) itemDelete(ctx workflow.Context, req protocol.ItemDeleteRequest) (protocol.VaultAnswer, error) {
	if err := v.ready(ctx); err != nil {
		return protocol.VaultAnswer{}, err
	}
	who := actor{by: protocol.Requester(req.RequestedBy)}
	answer := protocol.VaultAnswer{Settings: v.st.SoftDelete}
	if req.RequestID == "" && v.st.AllowedSigners != "" {
		// A signed delete read from an item's history and sent here first
		// would take the real delete's nonce.
		why, err := v.askedByItemInTurn(ctx, req.ItemID)
		if err != nil {
			answer.Unavailable = fmt.Sprintf("vault %s could not check that item %s asks it (%s): the item asks again", v.id, req.ItemID, protocol.Message(err))
			return answer, nil
		}
		if why != "" {
			err := errors.New(why)
			v.refuse(ctx, string(protocol.OpDelete), actor{by: who.by, signer: notVerified}, err)
			return protocol.VaultAnswer{}, protocol.Refused(err)
		}
	}
	if req.RequestID == "" {
		signer, err := v.authenticate(ctx, string(protocol.OpDelete), protocol.WorkflowID(v.id, req.ItemID), req.Input, who.by, true)
		var busy *signing.BusyError
		if errors.As(err, &busy) {
			answer.Unavailable = fmt.Sprintf("vault %s is busy: %s", v.id, busy.Error())
			return answer, nil
		}
		if err != nil {
			v.refuse(ctx, string(protocol.OpDelete), actor{by: who.by, signer: notVerified}, fmt.Errorf("item %s: %w", req.ItemID, err))
			return protocol.VaultAnswer{}, protocol.Refused(err)
		}
		who.signer = signer
	}
	switch {
	case req.RequestID != "":
		r, err := v.approvedDelete(ctx, req.ItemID, req.RequestID)
		if err != nil {
			return protocol.VaultAnswer{}, protocol.Refused(err)
		}
		who = actor{by: r.RequestedBy, signer: r.Signer}
		answer.RequestedBy = r.RequestedBy
		approver := r.DecidedBy
		if signing.FingerprintOf(r.DecisionSigner) != "" {
			approver = r.DecisionSigner
		}
		answer.Reason = fmt.Sprintf("approved by %s (request %s)", approver, r.RequestID)
		if r.Reason != "" {
			answer.Reason = r.Reason + "; " + answer.Reason
		}
		v.audit(ctx, string(protocol.OpDelete), who, protocol.OutcomeAccepted,
			fmt.Sprintf("request %s: carried out by item %s", r.RequestID, req.ItemID))
	case v.st.Mua.Enabled:
		// Deletes of items the vault does not hold would only fill its
		// queue of requests.
		isItem, err := v.realItem(ctx, req.ItemID, req.Incarnation)
		if err != nil {
			// Nothing took effect: its item sends the same signed request
			// again, which must not count as a replay.
			v.forgetNonce(req.Input)
			answer.Unavailable = fmt.Sprintf("vault %s could not check that item %s runs (%s): the item asks again", v.id, req.ItemID, protocol.Message(err))
			return answer, nil
		}
		if !isItem {
			err := fmt.Errorf("vault %s holds no item %s with data to delete", v.id, req.ItemID)
			v.refuse(ctx, string(protocol.OpDelete), who, err)
			return protocol.VaultAnswer{}, protocol.Refused(err)
		}
		// Each delete waits for an approver anyway: the guard only counts
		// it, and alerts when they come in a burst.
		v.guardDelete(ctx, req.ItemID, who, req.ReceivedAt)
		st, err := v.openRequest(ctx, protocol.MuaRequest{
			Operation: string(protocol.OpDelete), ItemID: req.ItemID, RequestedBy: who.by, Signer: who.signer, Reason: req.Reason,
			Summary: "delete the backup data of item " + req.ItemID,
		})
		if err != nil {
			return protocol.VaultAnswer{}, err
		}
		answer.Pending, answer.Signer = st.Request, who.signer
		answer.Approvers = v.st.Mua.otherApprovers(who.by)
		if v.st.AllowedSigners != "" {
			// The item checks the approval itself, with these keys.
			signers, _ := signing.ParseAllowedSigners(v.st.AllowedSigners)
			answer.ApproverKeys = signing.SignersFor(signers, answer.Approvers)
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
	w.Override = v.settings.Window()
	if w.ItemDays != 0 {
		w.ItemDays = max(w.ItemDays, protocol.MinSoftDeleteRetentionDays)
	}
	answer.Window, answer.Disabled = w.Window(v.st.SoftDelete)
	// On a store with object lock the storage keeps the data for the window
	// anyway: a vault Disabled before its store locked soft-deletes.
	answer.Disabled = answer.Disabled && !v.settings.StoreLocks
	deadline := req.At.Add(answer.Window)
	if answer.Disabled {
		deadline = req.At
	} else {
		answer.Alert = &protocol.Alert{Kind: protocol.AlertSoftDeleted, VaultID: v.id, ItemID: req.ItemID, RequestedBy: who.by, Signer: who.signer,
			Time: req.At.UTC(), PurgeTime: deadline.UTC(), Detail: protocol.SoftDeletedDetail(deadline)}
	}
	v.version++
	return answer, nil
}

// openRequest records a critical operation as pending approval, changes
// nothing else, and tells the approvers. The same operation asked again by
// the same person while pending gets the same request.
func (v *vault) openRequest(ctx workflow.Context, r protocol.MuaRequest) (VaultStatus, error) {
	if err := CheckRequester(v.id, v.st.Mua, r.RequestedBy); err != nil {
		v.refuse(ctx, r.Operation, actorOf(r), err)
		return VaultStatus{}, protocol.Refused(err)
	}
	pending, theirs := 0, 0
	for _, o := range v.st.Requests {
		if o.State != protocol.RequestPending {
			continue
		}
		pending++
		if signing.SameIdentity(o.RequestedBy, r.RequestedBy) {
			theirs++
			// An item's delete asked again is the same request; other
			// operations carry payloads that may differ.
			if r.Operation == string(protocol.OpDelete) && o.Operation == r.Operation && o.ItemID == r.ItemID {
				st := v.status()
				st.Request = &o
				return st, nil
			}
		}
	}
	var err error
	switch {
	case pending >= maxPendingRequests:
		err = fmt.Errorf("vault %s has %s pending approval: approve or reject some before asking again", v.id, protocol.Plural(pending, "request"))
	case theirs >= maxPendingPerRequester:
		err = fmt.Errorf("%s has %s pending approval at vault %s: withdraw some with reject, or wait for their approval", r.RequestedBy, protocol.Plural(theirs, "request"), v.id)
	}
	if err != nil {
		v.refuse(ctx, r.Operation, actorOf(r), err)
		return VaultStatus{}, protocol.Refused(err)
	}
	now := workflow.Now(ctx).UTC()
	v.st.RequestSequence++
	r.RequestID = "r-" + strconv.Itoa(v.st.RequestSequence)
	r.State = protocol.RequestPending
	r.CreatedAt = now
	r.ExpiresAt = now.Add(v.st.Mua.window())
	r.Detail = pendingDetail(v.st.Mua, r.RequestedBy, r.ExpiresAt)
	v.st.Requests = append(v.st.Requests, r)
	v.audit(ctx, r.Operation, actorOf(r), protocol.OutcomePending, fmt.Sprintf("request %s: %s; %s", r.RequestID, r.Summary, r.Detail))
	protocol.QueueAlert(&v.st.Outbox, protocol.Alert{
		Kind: protocol.AlertApprovalRequested, VaultID: v.id, ItemID: r.ItemID, RequestedBy: r.RequestedBy, Signer: r.Signer, Time: now,
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
func (v *vault) decide(ctx workflow.Context, req protocol.DecisionRequest, approve bool, input []byte) (VaultStatus, error) {
	if err := v.ready(ctx); err != nil {
		return VaultStatus{}, err
	}
	op := protocol.UpdateReject
	if approve {
		op = protocol.UpdateApprove
	}
	// Decisions are always signed on a vault that requires signatures: an
	// approval in another's name is the forgery signatures exist to stop.
	who, err := v.signedBy(ctx, op, input, actor{by: protocol.Requester(req.RequestedBy)}, true)
	if err != nil {
		return VaultStatus{}, err
	}
	by := who.by
	i := v.findRequest(req.RequestID)
	if i < 0 {
		err := fmt.Errorf("vault %s has no request %q: its status lists the requests it holds", v.id, req.RequestID)
		v.refuse(ctx, op, who, err)
		return VaultStatus{}, protocol.Refused(err)
	}
	r := v.st.Requests[i]
	err = CheckDecision(v.id, v.st.Mua, r, by, approve, workflow.Now(ctx))
	if key := signing.FingerprintOf(who.signer); err == nil && approve && key != "" && key == signing.FingerprintOf(r.Signer) {
		err = &protocol.Refusal{Message: fmt.Sprintf("request %s was signed with key %s, which may not approve it too: a second person must approve", r.RequestID, key)}
	}
	if err != nil {
		v.refuse(ctx, op, who, err)
		return VaultStatus{}, protocol.Refused(err)
	}
	if !approve {
		detail := "rejected by " + by
		if req.Reason != "" {
			detail += "; reason: " + req.Reason
		}
		v.close(ctx, i, protocol.RequestRejected, who, detail)
		return v.statusWith(r.RequestID), nil
	}
	v.close(ctx, i, protocol.RequestApproved, who, "approved by "+by)
	if err := v.carryOut(ctx, r, by, input); err != nil {
		// Requests may have moved while this ran: find it again.
		if i := v.findRequest(r.RequestID); i >= 0 {
			v.st.Requests[i].State = protocol.RequestFailed
			v.st.Requests[i].Detail = "approved by " + by + " but not carried out: " + err.Error()
		}
		v.refuse(ctx, r.Operation, actorOf(r), fmt.Errorf("request %s, approved by %s: %w", r.RequestID, by, err))
		return VaultStatus{}, protocol.Refused(fmt.Errorf("request %s was approved but not carried out: %w", r.RequestID, err))
	}
	return v.statusWith(r.RequestID), nil
}

// carryOut does what an approved request asked, checked again against the
// vault as it is now: a setting may have changed while it waited. approval
// is the approve update's payload, which an item checks itself.
func (v *vault) carryOut(ctx workflow.Context, r protocol.MuaRequest, approver string, approval []byte) error {
	who := actorOf(r)
	reason := fmt.Sprintf("approved by %s (request %s)", approver, r.RequestID)
	if r.Reason != "" {
		reason = r.Reason + "; " + reason
	}
	switch r.Operation {
	case protocol.UpdateSetSoftDelete:
		next, err := ChangeSoftDelete(v.id, v.st.SoftDelete, *r.SoftDelete)
		if err != nil {
			return err
		}
		v.changeSoftDelete(ctx, who, next, reason)
	case protocol.UpdateEnableMua:
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
	case protocol.UpdateDeleteVault:
		if err := v.deletable(ctx); err != nil {
			return err
		}
		if v.deleted {
			return nil
		}
		v.markDeleted(ctx, who, reason)
	case string(protocol.OpDelete):
		return v.tellItem(ctx, r, approval)
	default:
		return fmt.Errorf("operation %q cannot be carried out", r.Operation)
	}
	return nil
}

// tellItem sends an approved delete to its item, with the approval as its
// approver signed it: anyone could send that signal, so the item checks the
// signature itself, or on a vault without signers asks here (approvedDelete).
func (v *vault) tellItem(ctx workflow.Context, r protocol.MuaRequest, approval []byte) error {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			MaximumAttempts:        5,
			NonRetryableErrorTypes: []string{protocol.ErrTypeNoVault},
		},
	})
	payload, _ := json.Marshal(protocol.DeleteApproval{RequestID: r.RequestID, Approval: approval})
	in := protocol.MessageInput{
		WorkflowID: protocol.WorkflowID(v.id, r.ItemID), WorkflowType: protocol.WorkflowType, Name: protocol.SignalDeleteApproved, Payload: payload,
	}
	if err := workflow.ExecuteActivity(actx, protocol.ActivitySignal, in).Get(ctx, nil); err != nil {
		return fmt.Errorf("item %s could not be told: %s", r.ItemID, protocol.Message(err))
	}
	v.audit(ctx, string(protocol.OpDelete), actorOf(r), protocol.OutcomeAccepted,
		fmt.Sprintf("request %s: item %s told to delete its backup data", r.RequestID, r.ItemID))
	return nil
}

// close decides request i and records it. Decided requests are kept in the
// order of their decision, so the one just decided is the last to go.
func (v *vault) close(ctx workflow.Context, i int, state protocol.RequestState, who actor, detail string) {
	closed := v.st.Requests[i]
	v.st.Requests = append(slices.Delete(v.st.Requests, i, i+1), closed)
	r := &v.st.Requests[len(v.st.Requests)-1]
	r.State, r.DecidedBy, r.DecisionSigner, r.DecidedAt, r.Detail = state, who.by, who.signer, workflow.Now(ctx).UTC(), detail
	op := map[protocol.RequestState]string{protocol.RequestApproved: protocol.UpdateApprove, protocol.RequestRejected: protocol.UpdateReject, protocol.RequestExpired: "expire"}[state]
	outcome := protocol.OutcomeAccepted
	if state == protocol.RequestExpired {
		outcome = string(protocol.RequestExpired)
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
	awaited := func(r protocol.MuaRequest) bool {
		return r.State == protocol.RequestApproved && r.Operation == string(protocol.OpDelete) && !r.CarriedOut && now.Before(r.ExpiresAt)
	}
	awaiting, closed := 0, 0
	for _, r := range v.st.Requests {
		switch {
		case r.State == protocol.RequestPending:
		case awaited(r):
			awaiting++
		default:
			closed++
		}
	}
	keep := v.st.Requests[:0]
	for _, r := range v.st.Requests {
		switch {
		case r.State == protocol.RequestPending:
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
		if r.State == protocol.RequestPending && (next.IsZero() || r.ExpiresAt.Before(next)) {
			next = r.ExpiresAt
		}
	}
	if v.expiryTimer != nil && !v.expiryAt.Equal(next) {
		v.cancelExpiry()
		v.expiryTimer, v.cancelExpiry = nil, nil
	}
	if !next.IsZero() && v.expiryTimer == nil {
		v.expiryAt = next
		v.expiryTimer, v.cancelExpiry = protocol.StartTimer(ctx, next.Sub(workflow.Now(ctx)), "approval expiry")
	}
}

// expireRequests closes every request whose window has passed unapproved.
func (v *vault) expireRequests(ctx workflow.Context) {
	now := workflow.Now(ctx)
	v.closePending(ctx, func(r protocol.MuaRequest) bool { return !now.Before(r.ExpiresAt) }, protocol.RequestExpired,
		func(r protocol.MuaRequest) string {
			return "expired unapproved at " + r.ExpiresAt.UTC().Format(time.RFC3339) + ": nothing changed"
		})
}

// closePending closes, as the system, the pending requests that match.
// Closing trims the list, so each is found again by its ID.
func (v *vault) closePending(ctx workflow.Context, match func(protocol.MuaRequest) bool, state protocol.RequestState, detail func(protocol.MuaRequest) string) {
	var ids []string
	for _, r := range v.st.Requests {
		if r.State == protocol.RequestPending && match(r) {
			ids = append(ids, r.RequestID)
		}
	}
	for _, id := range ids {
		if i := v.findRequest(id); i >= 0 {
			v.close(ctx, i, state, actor{by: signing.System}, detail(v.st.Requests[i]))
		}
	}
}
