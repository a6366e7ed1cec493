package vault

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"recoveryvault/internal/signing"
	"recoveryvault/workflows/protocol"
)

// The vault's own commands, beside the updates people and items send.
const (
	// opExpire is the approval clock: pending requests past their window
	// expire.
	opExpire = "expire"
	// opTold is the result of telling an item that its delete was approved.
	opTold = "told"
)

// Command is one thing asked of a vault: an update, or what its own clock
// and effects report.
type Command struct {
	Op string
	// By is who asked, as they named themselves; Input the payload as sent,
	// which a signature covers.
	By    string
	Input []byte
	// Payload is the update's decoded request.
	Payload any
	// RequestID and Failure are opTold's: the approved delete told, and why
	// its item could not be told.
	RequestID string
	Failure   string
}

// Ask names a fact to gather before deciding again.
type Ask string

const (
	// AskCount: the vault's items holding data, counted again (the guard's
	// threshold grows with them).
	AskCount Ask = "count"
	// AskItems: the vault's items with data, each confirmed by its own
	// workflow (a vault with data is not deleted).
	AskItems Ask = "items"
	// AskCaller: whether an itemDelete comes from the item it names.
	AskCaller Ask = "caller"
	// AskItem: whether the item a delete names runs, in the incarnation
	// it claims.
	AskItem Ask = "item"
)

// Facts are what a decision needs besides the state and the command.
type Facts struct {
	Now      time.Time
	Settings protocol.Settings
	// Count is the count AskCount made, or the last one when it failed.
	Count *ItemCount
	// Items answers AskItems; ItemsErr says why they could not be listed.
	Items    *[]protocol.ListedItem
	ItemsErr string
	// Caller answers AskCaller and Item answers AskItem.
	Caller, Item *Check
}

// Check is the result of checking the item behind a delete: Why it failed,
// "" when it passed, or Err when it could not be made.
type Check struct {
	Why string
	Err string
}

// Decision is what a command means.
type Decision struct {
	// State is the vault's next state; a refusal is recorded in it too.
	State VaultState
	// Ask, when set, means no decision yet: gather that fact and decide
	// again. Nothing else in the decision counts.
	Ask Ask
	// Request is the request the command opened or decided, for its answer.
	Request *protocol.MuaRequest
	// Answer is the answer to an item's delete.
	Answer *protocol.VaultAnswer
	// Tell is an approved delete to signal to its item.
	Tell *Tell
}

// Tell is an approved delete, with the approval as its approver signed it.
type Tell struct {
	Request  protocol.MuaRequest
	Approval []byte
}

// Decide is the vault's rulebook. It never changes st; a refusal comes with
// the state that records it, kept as an acceptance is.
func Decide(st VaultState, c Command, f Facts) (Decision, error) {
	d := &decider{st: st, c: c, f: f, who: actor{by: protocol.Requester(c.By)}}
	d.st.Audit, d.st.Outbox, d.st.Requests = slices.Clone(st.Audit), slices.Clone(st.Outbox), slices.Clone(st.Requests)
	d.st.Nonces, d.st.MassDelete.Recent = slices.Clone(st.Nonces), slices.Clone(st.MassDelete.Recent)
	if f.Count != nil {
		d.st.Items = *f.Count
	}
	err := d.decide()
	return Decision{State: d.st, Ask: d.ask, Request: d.request, Answer: d.answer, Tell: d.tell}, err
}

type decider struct {
	st      VaultState
	c       Command
	f       Facts
	who     actor
	ask     Ask
	request *protocol.MuaRequest
	answer  *protocol.VaultAnswer
	tell    *Tell
}

// errAsk stops a decision that waits for a fact.
var errAsk = errors.New("a fact is missing")

func (d *decider) decide() error {
	if d.c.Op == protocol.UpdateDeleteVault && d.st.Deleted {
		return nil
	}
	if d.st.Deleted && d.c.Op != opTold {
		return fmt.Errorf("vault %s has been deleted", d.st.ID)
	}
	var err error
	switch d.c.Op {
	case opExpire:
		d.expire()
	case opTold:
		err = d.told()
	case protocol.UpdateApprove, protocol.UpdateReject:
		err = d.decideRequest(d.c.Op == protocol.UpdateApprove)
	case protocol.UpdateItemDelete:
		err = d.itemDelete()
	default:
		s, ok := settings[d.c.Op]
		if !ok {
			return fmt.Errorf("vault %s: operation %q is not known", d.st.ID, d.c.Op)
		}
		err = d.setting(s)
	}
	if errors.Is(err, errAsk) {
		return nil
	}
	return err
}

// need asks for fact a unless it is gathered.
func (d *decider) need(a Ask, gathered bool) error {
	if gathered {
		return nil
	}
	d.ask = a
	return errAsk
}

// setting changes a setting: judged, signed when it must be, and under
// multi-user authorization opened as a request when critical.
func (d *decider) setting(s setting) error {
	by, reason := requestedBy(d.c.Payload)
	d.who = actor{by: protocol.Requester(by)}
	var ch change
	var err error
	judge := func() error {
		if ch, err = s.change(d, d.c.Payload); err != nil && !errors.Is(err, errAsk) {
			return d.reject(d.c.Op, d.who, err)
		}
		return err
	}
	if !s.signFirst {
		if err := judge(); err != nil {
			return err
		}
	}
	if err := d.signed(d.c.Op, protocol.VaultWorkflowID(d.st.ID), s.signFirst || ch.signed); err != nil {
		return err
	}
	if s.signFirst {
		if err := judge(); err != nil {
			return err
		}
	}
	if d.st.Mua.Enabled && ch.critical {
		return d.open(protocol.MuaRequest{Operation: d.c.Op, RequestedBy: d.who.by, Signer: d.who.signer, Reason: reason, Summary: ch.summary}, ch.payload)
	}
	ch.apply(d, d.who, reason)
	return nil
}

// signed authenticates a request to the vault; a refusal is audited and
// alerted.
func (d *decider) signed(op, workflowID string, required bool) error {
	signer, err := d.authenticate(op, workflowID, d.c.Input, required)
	if err != nil {
		return d.reject(op, actor{by: d.who.by, signer: notVerified}, err)
	}
	d.who.signer = signer
	return nil
}

// authenticate checks input against the allowed signers by the vault's clock
// alone, remembers its nonce, and names the signer.
func (d *decider) authenticate(op, workflowID string, input []byte, required bool) (string, error) {
	if d.st.AllowedSigners == "" {
		return signing.Unsigned, nil
	}
	var sig signing.Signature
	_ = json.Unmarshal(input, &sig)
	if !required && sig.Signature == "" {
		return signing.Unsigned, nil
	}
	signers, err := signing.ParseAllowedSigners(d.st.AllowedSigners)
	if err != nil {
		return "", err
	}
	d.st.Nonces = signing.FreshNonces(d.st.Nonces, d.f.Now)
	s, n, err := signing.VerifySignature(signers, op, workflowID, input, d.who.by, signing.WithinSkew(d.f.Now), d.st.Nonces)
	if err != nil {
		var busy *signing.BusyError
		if errors.As(err, &busy) {
			return "", err
		}
		return "", fmt.Errorf("%s as %s refused: %w; nothing changed", op, d.who.by, err)
	}
	d.st.Nonces = append(d.st.Nonces, n)
	return s.String(), nil
}

// itemDelete answers an item's delete or clearAnomaly, critical alike:
// refused, waiting, registered for approval, or let through.
func (d *decider) itemDelete() error {
	req := d.c.Payload.(protocol.ItemDeleteRequest)
	op := req.Op()
	d.who = actor{by: protocol.Requester(req.RequestedBy)}
	answer := protocol.VaultAnswer{Settings: d.st.SoftDelete}
	d.answer = &answer
	if req.RequestID != "" {
		return d.approvedDelete(req)
	}
	if d.st.AllowedSigners != "" {
		// A signed delete read from an item's history and sent here first
		// would take the real delete's nonce.
		if err := d.need(AskCaller, d.f.Caller != nil); err != nil {
			return err
		}
		if d.f.Caller.Err != "" {
			answer.Unavailable = fmt.Sprintf("vault %s could not check that item %s asks it (%s): the item asks again", d.st.ID, req.ItemID, d.f.Caller.Err)
			return nil
		}
		if d.f.Caller.Why != "" {
			return d.reject(op, actor{by: d.who.by, signer: notVerified}, errors.New(d.f.Caller.Why))
		}
	}
	nonces := d.st.Nonces
	signer, err := d.authenticate(op, protocol.WorkflowID(d.st.ID, req.ItemID), req.Input, true)
	var busy *signing.BusyError
	switch {
	case errors.As(err, &busy):
		answer.Unavailable = fmt.Sprintf("vault %s is busy: %s", d.st.ID, busy.Error())
		return nil
	case err != nil:
		return d.reject(op, actor{by: d.who.by, signer: notVerified}, fmt.Errorf("item %s: %w", req.ItemID, err))
	}
	d.who.signer = signer
	// A delete that takes no effect (it waits) forgets its nonce: its item
	// sends the same signed request again, which is no replay.
	tookNoEffect := func() { d.st.Nonces = nonces }
	if d.st.Mua.Enabled {
		// Deletes of items the vault does not hold would only fill its
		// queue of requests.
		if err := d.need(AskItem, d.f.Item != nil); err != nil {
			return err
		}
		if d.f.Item.Err != "" {
			tookNoEffect()
			answer.Unavailable = fmt.Sprintf("vault %s could not check that item %s runs (%s): the item asks again", d.st.ID, req.ItemID, d.f.Item.Err)
			return nil
		}
		if d.f.Item.Why != "" {
			return d.reject(op, d.who, errors.New(d.f.Item.Why))
		}
		// Each delete waits for an approver anyway: the guard only counts
		// it, and alerts when they come in a burst.
		if op == string(protocol.OpDelete) {
			if _, err := d.guard(req); err != nil {
				return err
			}
		}
		summary := "delete the backup data of item " + req.ItemID
		if op == string(protocol.OpClearAnomaly) {
			summary = fmt.Sprintf("clear the anomaly of item %s: accept suspect recovery points %s as known good, so that its older points expire and deletes go on",
				req.ItemID, strings.Join(req.Points, ", "))
		}
		if err := d.open(protocol.MuaRequest{Operation: op, ItemID: req.ItemID, RequestedBy: d.who.by, Signer: d.who.signer,
			Reason: req.Reason, Summary: summary, Points: req.Points}, nil); err != nil {
			return err
		}
		answer.Pending, answer.Signer = d.request, d.who.signer
		answer.Approvers = d.st.Mua.otherApprovers(d.who.by)
		if d.st.AllowedSigners != "" {
			// The item checks the approval itself, with these keys.
			signers, _ := signing.ParseAllowedSigners(d.st.AllowedSigners)
			answer.ApproverKeys = signing.SignersFor(signers, answer.Approvers)
		}
		return nil
	}
	answer.Signer = d.who.signer
	if op == string(protocol.OpClearAnomaly) {
		d.audit(op, d.who, protocol.OutcomeAccepted, "item "+req.ItemID+": let through")
		return nil
	}
	why, err := d.guard(req)
	if err != nil {
		return err
	}
	if why != "" {
		tookNoEffect()
		answer.Held = why
		return nil
	}
	d.letThrough(req)
	return nil
}

// approvedDelete lets through a delete approved at the vault, once, within
// its window and with a key the vault lists now.
func (d *decider) approvedDelete(req protocol.ItemDeleteRequest) error {
	id := req.RequestID
	i := d.find(id)
	if i < 0 {
		return fmt.Errorf("vault %s holds no request %s, nothing changed", d.st.ID, id)
	}
	r := &d.st.Requests[i]
	switch {
	case r.Operation != req.Op() || r.ItemID != req.ItemID:
		return fmt.Errorf("request %s at vault %s is not a %s of item %s, nothing changed", id, d.st.ID, req.Op(), req.ItemID)
	case r.State != protocol.RequestApproved:
		return fmt.Errorf("request %s at vault %s is %s, not Approved: nothing changed", id, d.st.ID, r.State)
	case r.CarriedOut:
		return fmt.Errorf("request %s at vault %s has been carried out already: nothing changed", id, d.st.ID)
	case !d.f.Now.Before(r.ExpiresAt):
		// An approval is for then: one not carried out within the request's
		// window, say for an item that could not be told, must be asked again.
		return fmt.Errorf("request %s was approved but its window ended at %s: nothing changed, ask again", id, protocol.FormatTime(r.ExpiresAt))
	}
	if fp := signing.FingerprintOf(r.DecisionSigner); fp != "" {
		signers, _ := signing.ParseAllowedSigners(d.st.AllowedSigners)
		if !listedKey(signers, fp, r.DecidedBy) {
			return fmt.Errorf("request %s was approved with key %s, which vault %s no longer lists for %s: nothing changed, ask again",
				id, fp, d.st.ID, r.DecidedBy)
		}
	}
	r.CarriedOut = true
	d.who = actorOf(*r)
	approver := r.DecidedBy
	if signing.FingerprintOf(r.DecisionSigner) != "" {
		approver = r.DecisionSigner
	}
	d.answer.RequestedBy, d.answer.Points = r.RequestedBy, r.Points
	d.answer.Reason = fmt.Sprintf("approved by %s (request %s)", approver, r.RequestID)
	if r.Reason != "" {
		d.answer.Reason = r.Reason + "; " + d.answer.Reason
	}
	d.audit(r.Operation, d.who, protocol.OutcomeAccepted, fmt.Sprintf("request %s: carried out by item %s", r.RequestID, req.ItemID))
	if r.Operation == string(protocol.OpDelete) {
		d.letThrough(req)
	}
	d.answer.Signer = d.who.signer
	return nil
}

// letThrough answers a delete with its window under the vault's settings
// now; the worker's override is this worker's, never a message's.
func (d *decider) letThrough(req protocol.ItemDeleteRequest) {
	a := d.answer
	a.Signer = d.who.signer
	w := req.Window
	w.Override = d.f.Settings.Override()
	if w.ItemDays != 0 {
		w.ItemDays = max(w.ItemDays, protocol.MinSoftDeleteRetentionDays)
	}
	a.Window, a.Disabled = w.Window(d.st.SoftDelete)
	// On a store with object lock the storage keeps the data for the window
	// anyway: a vault Disabled before its store locked soft-deletes.
	a.Disabled = a.Disabled && !d.f.Settings.StoreLocks
	if a.Disabled {
		return
	}
	deadline := req.At.Add(a.Window)
	a.Alert = &protocol.Alert{Kind: protocol.AlertSoftDeleted, VaultID: d.st.ID, ItemID: req.ItemID, RequestedBy: d.who.by, Signer: d.who.signer,
		Time: req.At.UTC(), PurgeTime: deadline.UTC(), Detail: protocol.SoftDeletedDetail(deadline)}
}

// actor is who asked: the name they gave, and the key that signed,
// Unsigned, or notVerified.
type actor struct{ by, signer string }

// notVerified is the signer of a request whose signature was refused.
const notVerified = "signature not verified"

// actorOf is who asked for request r.
func actorOf(r protocol.MuaRequest) actor { return actor{by: r.RequestedBy, signer: r.Signer} }

// reject records a refused operation, raises an alert, and returns the
// refusal for the one who asked.
func (d *decider) reject(op string, who actor, err error) error {
	d.audit(op, who, protocol.OutcomeRejected, err.Error())
	d.alert(protocol.Alert{Kind: protocol.AlertCriticalRejected, RequestedBy: who.by, Signer: who.signer, Detail: op + " refused: " + err.Error()})
	return err
}

func (d *decider) audit(op string, who actor, outcome, detail string) {
	d.st.Audit = protocol.AppendAudit(d.st.Audit, protocol.AuditEntry{
		Time: d.f.Now.UTC(), Operation: op, RequestedBy: who.by, Signer: who.signer, Outcome: outcome, Detail: detail,
	})
}

func (d *decider) alert(a protocol.Alert) {
	a.VaultID, a.Time = d.st.ID, d.f.Now.UTC()
	protocol.QueueAlert(&d.st.Outbox, a)
}

// requestedBy is who asked for a setting's change, and why.
func requestedBy(payload any) (by, reason string) {
	switch r := payload.(type) {
	case protocol.SetSoftDeleteRequest:
		return r.RequestedBy, r.Reason
	case protocol.EnableMuaRequest:
		return r.RequestedBy, r.Reason
	case protocol.SetAllowedSignersRequest:
		return r.RequestedBy, r.Reason
	case protocol.SetMassDeleteGuardRequest:
		return r.RequestedBy, r.Reason
	case protocol.Request:
		return r.RequestedBy, r.Reason
	}
	return "", ""
}

// guard counts a delete, or says why it is held: once its threshold went
// through within its period. A delete released by a clear is not counted.
func (d *decider) guard(req protocol.ItemDeleteRequest) (string, error) {
	g, m := d.st.Guard, &d.st.MassDelete
	if g.Off || m.Released(req.ReceivedAt) {
		return "", nil
	}
	items, err := d.itemCount()
	if err != nil {
		return "", err
	}
	threshold := g.threshold(items)
	now := d.f.Now
	if m.HeldSince.IsZero() {
		if m.forget(now, g) < threshold {
			m.count(now, g)
			return "", nil
		}
		m.HeldSince = now
		detail := fmt.Sprintf("%s within %s reached the mass-delete guard's threshold: every further delete of vault %s is held until the hold is cleared (clearMassDeleteHold)",
			protocol.Plural(m.forget(now, g), "delete"), g.period(), d.st.ID)
		d.audit("massDeleteHold", actor{by: signing.System}, protocol.OutcomeAccepted, detail)
		d.alert(protocol.Alert{Kind: AlertMassDelete, ItemID: req.ItemID, RequestedBy: d.who.by, Signer: d.who.signer, Detail: detail})
	}
	return fmt.Sprintf("vault %s holds deletes since %s: %d deletes within %s reached its mass-delete guard; the delete waits until the hold is cleared (clearMassDeleteHold)",
		d.st.ID, protocol.FormatTime(m.HeldSince), threshold, g.period()), nil
}

// countMaxAge is how old a count of the vault's items may be when the
// guard needs it, and how long a count that failed is not tried again.
const countMaxAge = time.Minute

// itemCount is the vault's items that hold data, counted again when the
// count is older than countMaxAge; a failed count keeps the last.
func (d *decider) itemCount() (int, error) {
	c := d.st.Items
	stale := d.f.Now.Sub(c.At) >= countMaxAge && d.f.Now.Sub(c.Tried) >= countMaxAge
	if err := d.need(AskCount, !stale); err != nil {
		return 0, err
	}
	return c.HoldingData, nil
}
