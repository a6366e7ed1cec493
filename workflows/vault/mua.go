package vault

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"recoveryvault/internal/signing"
	"recoveryvault/workflows/protocol"
)

// open records a critical operation as pending approval and tells the
// approvers; the same delete asked again gets the same request.
func (d *decider) open(r protocol.MuaRequest, payload func(*protocol.MuaRequest)) error {
	if err := CheckRequester(d.st.ID, d.st.Mua, r.RequestedBy); err != nil {
		return d.reject(r.Operation, actorOf(r), err)
	}
	pending, theirs := 0, 0
	for _, o := range d.st.Requests {
		if o.State != protocol.RequestPending {
			continue
		}
		pending++
		if signing.SameIdentity(o.RequestedBy, r.RequestedBy) {
			theirs++
			// Other operations carry payloads that may differ.
			if protocol.ItemOperation(r.Operation) && o.Operation == r.Operation && o.ItemID == r.ItemID {
				d.request = &o
				return nil
			}
		}
	}
	switch {
	case pending >= maxPendingRequests:
		return d.reject(r.Operation, actorOf(r), fmt.Errorf("vault %s has %s pending approval: approve or reject some before asking again", d.st.ID, protocol.Plural(pending, "request")))
	case theirs >= maxPendingPerRequester:
		return d.reject(r.Operation, actorOf(r), fmt.Errorf("%s has %s pending approval at vault %s: withdraw some with reject, or wait for their approval",
			r.RequestedBy, protocol.Plural(theirs, "request"), d.st.ID))
	}
	if payload != nil {
		payload(&r)
	}
	now := d.f.Now.UTC()
	d.st.RequestSequence++
	r.RequestID = "r-" + strconv.Itoa(d.st.RequestSequence)
	r.State = protocol.RequestPending
	r.CreatedAt = now
	r.ExpiresAt = now.Add(d.st.Mua.period())
	r.Detail = pendingDetail(d.st.Mua, r.RequestedBy, r.ExpiresAt)
	d.st.Requests = append(d.st.Requests, r)
	d.audit(r.Operation, actorOf(r), protocol.OutcomePending, fmt.Sprintf("request %s: %s; %s", r.RequestID, r.Summary, r.Detail))
	d.alert(protocol.Alert{Kind: protocol.AlertApprovalRequested, ItemID: r.ItemID, RequestedBy: r.RequestedBy, Signer: r.Signer,
		Detail: fmt.Sprintf("request %s: %s; %s", r.RequestID, r.Summary, r.Detail)})
	d.request = &r
	return nil
}

// decideRequest approves or rejects a request, always signed on a signed
// vault; an approval carries the operation out under the rules as they are.
func (d *decider) decideRequest(approve bool) error {
	req := d.c.Payload.(protocol.DecisionRequest)
	op := d.c.Op
	d.who = actor{by: protocol.Requester(req.RequestedBy)}
	// A vault's deletion lists its items only once the approval is
	// judged (carryOut): a forged one costs no listing.
	if err := d.signed(op, protocol.VaultWorkflowID(d.st.ID), true); err != nil {
		return err
	}
	by := d.who.by
	i := d.find(req.RequestID)
	if i < 0 {
		return d.reject(op, d.who, fmt.Errorf("vault %s has no request %q: its status lists the requests it holds", d.st.ID, req.RequestID))
	}
	r := d.st.Requests[i]
	err := CheckDecision(d.st.ID, d.st.Mua, r, by, approve, d.f.Now)
	if key := signing.FingerprintOf(d.who.signer); err == nil && approve && key != "" && key == signing.FingerprintOf(r.Signer) {
		err = &protocol.Refusal{Message: fmt.Sprintf("request %s was signed with key %s, which may not approve it too: a second person must approve", r.RequestID, key)}
	}
	if err != nil {
		return d.reject(op, d.who, err)
	}
	if !approve {
		detail := "rejected by " + by
		if req.Reason != "" {
			detail += "; reason: " + req.Reason
		}
		d.close(r.RequestID, protocol.RequestRejected, d.who, detail)
		return nil
	}
	d.close(r.RequestID, protocol.RequestApproved, d.who, "approved by "+by)
	if err := d.carryOut(r, by); err != nil && !errors.Is(err, errAsk) {
		return d.failed(r, by, err)
	} else if err != nil {
		return err
	}
	return nil
}

// carryOut does what an approved request asked, checked again against the
// vault as it is now: a setting may have changed while it waited.
func (d *decider) carryOut(r protocol.MuaRequest, approver string) error {
	who := actorOf(r)
	reason := fmt.Sprintf("approved by %s (request %s)", approver, r.RequestID)
	if r.Reason != "" {
		reason = r.Reason + "; " + reason
	}
	if protocol.ItemOperation(r.Operation) {
		// The item checks the approval's signature itself (the signal
		// could come from anyone), then asks here again.
		d.tell = &Tell{Request: r, Approval: d.c.Input}
		return nil
	}
	s, ok := settings[r.Operation]
	if !ok {
		return fmt.Errorf("operation %q cannot be carried out", r.Operation)
	}
	ch, err := s.change(d, s.payloadOf(r))
	if err != nil {
		return err
	}
	ch.apply(d, who, reason)
	return nil
}

// told records whether an approved delete reached its item.
func (d *decider) told() error {
	i := d.find(d.c.RequestID)
	if i < 0 {
		if d.c.Failure == "" {
			return nil
		}
		// Gone from the list meanwhile: the failure is still said.
		return d.reject(string(protocol.OpDelete), actor{by: signing.System}, fmt.Errorf("request %s was approved but its item could not be told: %s", d.c.RequestID, d.c.Failure))
	}
	r := d.st.Requests[i]
	if d.c.Failure != "" {
		return d.failed(r, r.DecidedBy, fmt.Errorf("item %s could not be told: %s", r.ItemID, d.c.Failure))
	}
	d.audit(r.Operation, actorOf(r), protocol.OutcomeAccepted, fmt.Sprintf("request %s: item %s told of the approval", r.RequestID, r.ItemID))
	return nil
}

// failed marks an approved request that could not be carried out.
func (d *decider) failed(r protocol.MuaRequest, approver string, err error) error {
	if i := d.find(r.RequestID); i >= 0 {
		d.st.Requests[i].State = protocol.RequestFailed
		d.st.Requests[i].Detail = "approved by " + approver + " but not carried out: " + err.Error()
	}
	_ = d.reject(r.Operation, actorOf(r), fmt.Errorf("request %s, approved by %s: %w", r.RequestID, approver, err))
	return fmt.Errorf("request %s was approved but not carried out: %w", r.RequestID, err)
}

// expire closes every request whose window has passed unapproved.
func (d *decider) expire() {
	d.closePending(func(r protocol.MuaRequest) bool { return !d.f.Now.Before(r.ExpiresAt) }, protocol.RequestExpired,
		func(r protocol.MuaRequest) string {
			return "expired unapproved at " + protocol.FormatTime(r.ExpiresAt) + ": nothing changed"
		})
}

func (d *decider) find(id string) int {
	return slices.IndexFunc(d.st.Requests, func(r protocol.MuaRequest) bool { return r.RequestID == id })
}

// close decides request id and records it. Decided requests are kept in
// the order of their decision, so the one just decided is the last to go.
func (d *decider) close(id string, state protocol.RequestState, who actor, detail string) {
	i := d.find(id)
	closed := d.st.Requests[i]
	d.st.Requests = append(slices.Delete(d.st.Requests, i, i+1), closed)
	r := &d.st.Requests[len(d.st.Requests)-1]
	r.State, r.DecidedBy, r.DecisionSigner, r.DecidedAt, r.Detail = state, who.by, who.signer, d.f.Now.UTC(), detail
	op := map[protocol.RequestState]string{protocol.RequestApproved: protocol.UpdateApprove, protocol.RequestRejected: protocol.UpdateReject, protocol.RequestExpired: opExpire}[state]
	outcome := protocol.OutcomeAccepted
	if state == protocol.RequestExpired {
		outcome = string(protocol.RequestExpired)
	}
	d.audit(op, who, outcome, fmt.Sprintf("request %s (%s, asked by %s): %s", r.RequestID, r.Summary, r.RequestedBy, detail))
	decided := *r
	d.request = &decided
	d.st.Requests = trimRequests(d.st.Requests, d.f.Now)
}

// closePending closes, as the system, the pending requests that match.
func (d *decider) closePending(match func(protocol.MuaRequest) bool, state protocol.RequestState, detail func(protocol.MuaRequest) string) {
	var closing []protocol.MuaRequest
	for _, r := range d.st.Requests {
		if r.State == protocol.RequestPending && match(r) {
			closing = append(closing, r)
		}
	}
	request := d.request
	for _, r := range closing {
		if d.find(r.RequestID) >= 0 {
			d.close(r.RequestID, state, actor{by: signing.System}, detail(r))
		}
	}
	d.request = request
}

// UpdateSetAllowedSigners sets, replaces or removes a vault's allowed
// signers (docs/contract.md section 4).
const UpdateSetAllowedSigners = "setAllowedSigners"

// Bounds of multi-user authorization.
const (
	DefaultApprovalWindow = 24 * time.Hour
	MinApprovalWindow     = time.Minute
	MaxApprovalWindow     = 30 * 24 * time.Hour
	maxApprovers          = 20
	// maxPendingRequests bounds what a flood of requests can make a vault
	// carry; maxClosedRequests how many decided ones it keeps to show.
	maxPendingRequests = 100
	// maxPendingPerRequester keeps one requester from filling the queue.
	maxPendingPerRequester = 10
	maxClosedRequests      = 50
)

// MuaSettings are a vault's multi-user authorization: while enabled, a
// critical operation waits for one of Approvers other than its requester.
type MuaSettings struct {
	Enabled   bool     `json:"enabled"`
	Approvers []string `json:"approvers,omitempty"`
	// ApprovalWindow is a duration ("24h"): how long a request may wait.
	ApprovalWindow string `json:"approvalWindow,omitempty"`
}

// period is how long a request may wait for approval.
func (m MuaSettings) period() time.Duration {
	if d, err := time.ParseDuration(m.ApprovalWindow); err == nil && d > 0 {
		return d
	}
	return DefaultApprovalWindow
}

func (m MuaSettings) String() string {
	if !m.Enabled {
		return "multi-user authorization off"
	}
	return fmt.Sprintf("multi-user authorization on: approvers %s, requests expire after %s",
		strings.Join(m.Approvers, ", "), m.ApprovalWindow)
}

// ChangeMua applies an enableMua request to the current settings, or
// refuses it in a sentence.
func ChangeMua(vaultID string, cur MuaSettings, req protocol.EnableMuaRequest) (MuaSettings, error) {
	if req.Enabled != nil && !*req.Enabled {
		if !cur.Enabled {
			return cur, &protocol.Refusal{Message: fmt.Sprintf("multi-user authorization of vault %s is already off", vaultID)}
		}
		if len(req.Approvers) > 0 || req.ApprovalWindow != "" {
			return cur, &protocol.Refusal{Message: `"enabled": false turns multi-user authorization off: send it without approvers or approvalWindow`}
		}
		return MuaSettings{}, nil
	}
	next := MuaSettings{Enabled: true, Approvers: cur.Approvers, ApprovalWindow: cur.ApprovalWindow}
	if len(req.Approvers) > 0 {
		approvers, err := approverList(req.Approvers)
		if err != nil {
			return cur, err
		}
		next.Approvers = approvers
	}
	if len(next.Approvers) == 0 {
		return cur, &protocol.Refusal{Message: `multi-user authorization needs approvers: send {"approvers": ["alice", "bob"], "approvalWindow": "24h"}`}
	}
	if req.ApprovalWindow != "" {
		d, err := time.ParseDuration(req.ApprovalWindow)
		if err != nil || d < MinApprovalWindow || d > MaxApprovalWindow {
			return cur, protocol.FieldRefusal(protocol.CodeOutOfBounds, "approvalWindow", "approvalWindow %q is not a duration from %s to %s, such as \"24h\"",
				req.ApprovalWindow, MinApprovalWindow, protocol.FormatRemaining(MaxApprovalWindow))
		}
		next.ApprovalWindow = d.String()
	}
	if next.ApprovalWindow == "" {
		next.ApprovalWindow = DefaultApprovalWindow.String()
	}
	return next, nil
}

func approverList(names []string) ([]string, error) {
	if len(names) > maxApprovers {
		return nil, protocol.FieldRefusal(protocol.CodeOutOfBounds, "approvers", "approvers: %d are too many, name at most %d", len(names), maxApprovers)
	}
	var out []string
	for _, n := range names {
		n = strings.TrimSpace(n)
		if signing.ReservedName(n) || len(n) > 256 {
			return nil, protocol.FieldRefusal(protocol.CodeBadValue, "approvers", "approvers: %q is not a name, use the identity each approver signs requests with", n)
		}
		if slices.ContainsFunc(out, func(o string) bool { return signing.SameIdentity(o, n) }) {
			return nil, protocol.FieldRefusal(protocol.CodeBadValue, "approvers", "approvers: %q is named twice", n)
		}
		out = append(out, n)
	}
	return out, nil
}

// otherApprovers are the approvers who may approve what by asks.
func (m MuaSettings) otherApprovers(by string) []string {
	var others []string
	for _, a := range m.Approvers {
		if !signing.SameIdentity(a, by) {
			others = append(others, a)
		}
	}
	return others
}

// CheckRequester refuses a request no one else could approve.
func CheckRequester(vaultID string, m MuaSettings, by string) error {
	if signing.ReservedName(by) {
		return &protocol.Refusal{Message: fmt.Sprintf(
			"multi-user authorization of vault %s is on: name yourself in requestedBy, so that someone else can approve", vaultID),
			Code: protocol.CodeNameNeeded, Field: "requestedBy"}
	}
	if len(m.otherApprovers(by)) == 0 {
		return &protocol.Refusal{Message: fmt.Sprintf(
			"%s is the only approver of vault %s, and no one may approve their own request: another person must ask, or add approvers", by, vaultID)}
	}
	return nil
}

// pendingDetail tells the requester who may approve and until when.
func pendingDetail(m MuaSettings, by string, expires time.Time) string {
	return fmt.Sprintf("pending approval by %s until %s; nothing changes unless approved by then",
		strings.Join(m.otherApprovers(by), " or "), expires.UTC().Format(time.RFC3339))
}

// CheckDecision says whether by may approve (or reject) request r now. A
// requester may withdraw a request, never approve it.
func CheckDecision(vaultID string, m MuaSettings, r protocol.MuaRequest, by string, approve bool, now time.Time) error {
	verb := "approve"
	if !approve {
		verb = "reject"
	}
	switch {
	case r.State != protocol.RequestPending:
		return &protocol.Refusal{Message: fmt.Sprintf("request %s is %s, not pending: nothing to %s", r.RequestID, r.State, verb)}
	case !now.Before(r.ExpiresAt):
		return &protocol.Refusal{Message: fmt.Sprintf("request %s expired at %s: send the operation again", r.RequestID, r.ExpiresAt.UTC().Format(time.RFC3339))}
	case signing.ReservedName(by):
		return &protocol.Refusal{Message: fmt.Sprintf("to %s request %s, name yourself in requestedBy", verb, r.RequestID),
			Code: protocol.CodeNameNeeded, Field: "requestedBy"}
	case approve && signing.SameIdentity(by, r.RequestedBy):
		return &protocol.Refusal{Message: fmt.Sprintf("%s requested %s and cannot approve it: another approver of vault %s must", by, r.RequestID, vaultID)}
	case len(m.otherApprovers(by)) == len(m.Approvers) && (approve || !signing.SameIdentity(by, r.RequestedBy)):
		return &protocol.Refusal{Message: fmt.Sprintf("%s is not an approver of vault %s: its approvers are %s", by, vaultID, strings.Join(m.Approvers, ", "))}
	}
	return nil
}

// trimRequests keeps the pending requests, the approved deletes not carried
// out yet (the newest maxPendingRequests), and the last decided ones.
func trimRequests(requests []protocol.MuaRequest, now time.Time) []protocol.MuaRequest {
	awaited := func(r protocol.MuaRequest) bool {
		return r.State == protocol.RequestApproved && protocol.ItemOperation(r.Operation) && !r.CarriedOut && now.Before(r.ExpiresAt)
	}
	awaiting, closed := 0, 0
	for _, r := range requests {
		switch {
		case r.State == protocol.RequestPending:
		case awaited(r):
			awaiting++
		default:
			closed++
		}
	}
	keep := requests[:0]
	for _, r := range requests {
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
	return keep
}

// unbacked says why the keys listed now no longer stand behind pending
// request r, or "".
func unbacked(r protocol.MuaRequest, signers []signing.AllowedSigner, approvers []string) string {
	if fp := signing.FingerprintOf(r.Signer); fp != "" && !listedKey(signers, fp, r.RequestedBy) {
		return fmt.Sprintf("the key %s that signed request %s is no longer listed for %s", fp, r.RequestID, r.RequestedBy)
	}
	if len(signers) == 0 {
		return ""
	}
	for _, a := range approvers {
		if !signing.SameIdentity(a, r.RequestedBy) && slices.ContainsFunc(signers, func(s signing.AllowedSigner) bool { return s.ListedFor(a) }) {
			return ""
		}
	}
	return fmt.Sprintf("no approver but %s holds a listed key: request %s could no longer be approved", r.RequestedBy, r.RequestID)
}

// listedKey is true when the key of fingerprint fp is listed for by.
func listedKey(signers []signing.AllowedSigner, fp, by string) bool {
	return slices.ContainsFunc(signers, func(s signing.AllowedSigner) bool { return s.Fingerprint == fp && s.ListedFor(by) })
}

// signerSummary names every key: "alice@example.com (SHA256:...), ...".
func signerSummary(signers []signing.AllowedSigner) string {
	var parts []string
	for _, s := range signers {
		parts = append(parts, strings.Join(s.Principals, ",")+" ("+s.Fingerprint+")")
	}
	return protocol.Plural(len(signers), "key") + ": " + strings.Join(parts, ", ")
}

// sharedApproverKeys names a key listed for more than one approver: its
// holder could request as one and approve as another.
func sharedApproverKeys(signers []signing.AllowedSigner, approvers []string) error {
	for _, s := range signers {
		var names []string
		for _, a := range approvers {
			// The same key may be on several lines.
			if slices.ContainsFunc(signers, func(o signing.AllowedSigner) bool { return o.Fingerprint == s.Fingerprint && o.ListedFor(a) }) {
				names = append(names, a)
			}
		}
		if len(names) > 1 {
			return &protocol.Refusal{Message: fmt.Sprintf("key %s is listed for approvers %s: each approver needs a key of their own, or one person could request and approve",
				s.Fingerprint, strings.Join(names, " and "))}
		}
	}
	return nil
}
