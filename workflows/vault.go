package workflows

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"
)

// VaultInput starts a Vault. State is set only by continue-as-new.
type VaultInput struct {
	VaultID string      `json:"vaultId"`
	State   *VaultState `json:"state,omitempty"`
}

// VaultState is everything a vault carries across continue-as-new.
type VaultState struct {
	SoftDelete SoftDeleteSettings `json:"softDelete"`
	// Items is the vault's last count of its items that hold data, from
	// visibility: the vault carries no list of them, so what it carries
	// stays the same size however many items it holds.
	Items  ItemCount    `json:"items"`
	Audit  []AuditEntry `json:"audit"`
	Outbox []Alert      `json:"outbox,omitempty"`
	Mua    MuaSettings  `json:"mua"`
	// Requests are the critical operations pending approval and the last
	// ones decided; RequestSequence numbers them.
	Requests        []MuaRequest `json:"requests,omitempty"`
	RequestSequence int          `json:"requestSequence,omitempty"`
	// AllowedSigners are the operators' public keys, in OpenSSH's
	// allowed_signers format: while set, critical operations must be
	// signed. Nonces are the signed requests seen within the skew.
	AllowedSigners string      `json:"allowedSigners,omitempty"`
	Nonces         []SeenNonce `json:"nonces,omitempty"`
	// Guard is the mass-delete guard's setting, MassDelete what it saw.
	Guard      MassDeleteGuard `json:"massDeleteGuard"`
	MassDelete MassDeleteState `json:"massDelete"`
}

// ItemCount is how many of a vault's items hold data (every state but
// Purged), as visibility counted them at At; zero At is never counted.
type ItemCount struct {
	HoldingData int       `json:"holdingData"`
	At          time.Time `json:"at,omitzero"`
}

// VaultStatus answers the vault's status query and its updates.
type VaultStatus struct {
	VaultID                     string             `json:"vaultId"`
	SoftDelete                  SoftDeleteSettings `json:"softDelete"`
	SoftDeleteRetentionOverride string             `json:"softDeleteRetentionOverride,omitempty"`
	// Items is the vault's last count of its items holding data, for its
	// mass-delete guard; lists and counts by state come from visibility
	// (ItemsQuery), where each item publishes its own state.
	Items                  ItemCount    `json:"items"`
	MultiUserAuthorization MuaSettings  `json:"multiUserAuthorization"`
	Requests               []MuaRequest `json:"requests"`
	// SignaturesRequired is true while the vault holds allowed signers,
	// listed in AllowedSigners.
	SignaturesRequired bool        `json:"signaturesRequired"`
	AllowedSigners     []SignerKey `json:"allowedSigners"`
	// MassDeleteGuard is the guard's setting and what it is now: its
	// threshold for the vault's items, and since when it holds deletes.
	MassDeleteGuard MassDeleteGuardStatus `json:"massDeleteGuard"`
	// Request is the request an update opened or decided, in its answer.
	Request *MuaRequest  `json:"request,omitempty"`
	Deleted bool         `json:"deleted"`
	Audit   []AuditEntry `json:"audit"`
}

// DeleteSettings are what an item reads from its vault at a delete.
type DeleteSettings struct {
	SoftDeleteSettings
	// MultiUserAuthorization, when true, makes the delete wait for approval.
	MultiUserAuthorization bool `json:"multiUserAuthorization,omitempty"`
	// MassDeleteHeldSince is when the vault's mass-delete guard started
	// holding deletes, zero while it does not; MassDeleteReleasedUntil is
	// when the hold was last cleared.
	MassDeleteHeldSince     time.Time `json:"massDeleteHeldSince,omitzero"`
	MassDeleteReleasedUntil time.Time `json:"massDeleteReleasedUntil,omitzero"`
	// Signers is the digest of the vault's allowed signers, "" for none.
	Signers string `json:"signers,omitempty"`
	// Run is the run that wrote the memo: a memo is believed only from the
	// run that runs now.
	Run string `json:"run,omitempty"`
	// Incarnation is the vault's first run's ID, from the server's record
	// rather than the memo.
	Incarnation string `json:"-"`
}

// Protection is what the vault requires of a delete now.
func (s DeleteSettings) Protection() Protection {
	return Protection{Mua: s.MultiUserAuthorization, Signers: s.Signers, Incarnation: s.Incarnation}
}

// StillHeld says why a delete the vault held when last asked is held
// still, as the vault's published hold shows, or "" when the vault must be
// asked again: the hold was cleared after the delete was received, or the
// vault holds nothing, or the delete's signature is stale by now. Held
// deletes ask again every few minutes; read from
// the vault's record, a thousand of them cost the vault nothing while the
// hold lasts. It is never a reason to let a delete through: only the vault
// does that.
func (s DeleteSettings) StillHeld(vaultID string, req ItemDeleteRequest, now time.Time) string {
	if s.MassDeleteHeldSince.IsZero() || s.MultiUserAuthorization || req.RequestID != "" ||
		(!req.ReceivedAt.IsZero() && !req.ReceivedAt.After(s.MassDeleteReleasedUntil)) {
		return ""
	}
	// A signed delete whose signature has gone stale is the vault's to
	// refuse, now, rather than shown waiting for a clear it cannot pass.
	var sig Signature
	_ = json.Unmarshal(req.Input, &sig)
	if at, err := time.Parse(time.RFC3339, sig.SignedAt); sig.Signature != "" && (err != nil || withinSkew(now)(at) != nil) {
		return ""
	}
	return fmt.Sprintf("vault %s holds deletes since %s: its mass-delete guard let its threshold through; the delete waits until the hold is cleared (clearMassDeleteHold)",
		vaultID, rfc3339(s.MassDeleteHeldSince))
}

// UpdateItemDelete is how an item's delete reaches its vault (users send
// delete to the item): the vault answers with the window it gets, or
// registers it for approval, or confirms an approval, and records it.
const UpdateItemDelete = "itemDelete"

// ItemDeleteRequest is the payload of itemDelete.
type ItemDeleteRequest struct {
	ItemID      string `json:"itemId"`
	Incarnation string `json:"incarnation,omitempty"`
	RequestedBy string `json:"requestedBy,omitempty"`
	Reason      string `json:"reason,omitempty"`
	// RequestID is an approved request the item carries out.
	RequestID string `json:"requestId,omitempty"`
	// Input is the delete's payload as the person sent it, signature
	// included: a vault that requires signatures checks it.
	Input json.RawMessage `json:"input,omitempty"`
	// At is the item's time of the delete; the deadline counts from it.
	At time.Time `json:"at"`
	// ReceivedAt is when the item received the delete: one received before
	// the vault's mass-delete hold was last cleared was released by the
	// clear, and passes the guard uncounted.
	ReceivedAt time.Time `json:"receivedAt,omitzero"`
	// Window is the item's part in the window.
	Window WindowInputs `json:"window"`
}

// VaultAnswer is the vault's answer to an item's delete: the window it
// gets, or the request it waits on, or why it cannot be made.
type VaultAnswer struct {
	// Refusal says why nothing can be deleted now; nothing changed.
	Refusal string `json:"refusal,omitempty"`
	// Unavailable says why the vault could not answer (busy, restarting,
	// not created yet): the delete waits and is asked again.
	Unavailable string `json:"unavailable,omitempty"`
	// Held says why the vault holds the delete (its mass-delete guard):
	// the delete waits and is asked again.
	Held string `json:"held,omitempty"`
	// Settings are the vault's soft-delete settings now.
	Settings SoftDeleteSettings `json:"settings"`
	// Window is the delete's soft-delete window; Disabled says the vault
	// purges at once.
	Window   time.Duration `json:"window"`
	Disabled bool          `json:"disabled,omitempty"`
	// Pending is the request that must be approved first.
	Pending *MuaRequest `json:"pending,omitempty"`
	// RequestedBy and Reason are an approved request's, for the item's audit.
	RequestedBy string `json:"requestedBy,omitempty"`
	Reason      string `json:"reason,omitempty"`
	// Signer is who signed the delete, or Unsigned.
	Signer string `json:"signer,omitempty"`
	// Approvers and ApproverKeys come with Pending: who may approve, and,
	// on a vault that requires signatures, their keys (allowed_signers
	// lines), with which the item checks the approval itself.
	Approvers    []string `json:"approvers,omitempty"`
	ApproverKeys string   `json:"approverKeys,omitempty"`
	// Alert is for the asking activity to deliver.
	Alert *Alert `json:"alert,omitempty"`
}

// maxVaultHistoryLength bounds a vault's history, in events, whether or
// not the server suggests continue-as-new.
const maxVaultHistoryLength = 4000

// NewVault returns the Vault workflow bound to a worker's settings; register
// it under VaultWorkflowType.
func NewVault(s Settings) func(workflow.Context, VaultInput) (VaultStatus, error) {
	return func(ctx workflow.Context, in VaultInput) (VaultStatus, error) { return runVault(ctx, in, s) }
}

// Vault holds a vault's soft-delete settings, multi-user authorization,
// allowed signers and mass-delete guard, and answers its items' deletes.
// It publishes the settings an item needs in its memo, which the server
// serves without a task of the vault; the items publish their own states
// in visibility, so the vault never hears of an item's other changes.
func Vault(ctx workflow.Context, in VaultInput) (VaultStatus, error) {
	return runVault(ctx, in, Settings{})
}

type vault struct {
	id       string
	st       VaultState
	settings Settings
	deleted  bool
	version  int
	sender   *alertSender
	verified bool
	// published is what the memo says, as of this run.
	published *DeleteSettings
	// counting is true while the vault counts its items; countTried is
	// when the last count started.
	counting   bool
	countTried time.Time
	// turns and served keep the deletes that wait for a count in the
	// order they came; checks and checked, the signed deletes whose item
	// is checked.
	turns, served   int
	checks, checked int

	expiryTimer  workflow.Future
	cancelExpiry workflow.CancelFunc
	expiryAt     time.Time
}

func runVault(ctx workflow.Context, in VaultInput, settings Settings) (VaultStatus, error) {
	if err := ValidateID("vaultId", in.VaultID); err != nil {
		return VaultStatus{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidInput, nil)
	}
	if err := checkIdentity(ctx, VaultWorkflowID(in.VaultID)); err != nil {
		return VaultStatus{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidInput, nil)
	}
	v := &vault{id: in.VaultID, settings: settings}
	if in.State != nil {
		v.st = *in.State
	} else {
		v.st = VaultState{SoftDelete: DefaultSoftDeleteSettings()}
	}
	// Handlers first, for an update in the run's first task; they wait
	// until carried state has been verified.
	v.verified = in.State == nil
	if err := v.registerHandlers(ctx); err != nil {
		return VaultStatus{}, err
	}
	if in.State != nil {
		// Settings such as AlwaysOn must not be forgeable by a start input.
		if err := checkCarriedState(ctx); err != nil {
			return VaultStatus{}, temporal.NewNonRetryableApplicationError(err.Error(), ErrTypeInvalidInput, nil)
		}
		v.verified = true
	}
	v.sender = startAlertSender(ctx, &v.st.Outbox)

	for {
		if ctx.Err() != nil {
			return v.status(), ctx.Err()
		}
		if err := v.publish(ctx); err != nil {
			return VaultStatus{}, err
		}
		if v.done(ctx) {
			return v.status(), nil
		}
		v.armExpiry(ctx)
		if fired(ctx, v.expiryTimer) {
			v.expiryTimer, v.cancelExpiry = nil, nil
			v.expireRequests(ctx)
			continue
		}
		if v.readyToContinueAsNew(ctx) {
			st := v.st
			return VaultStatus{}, workflow.NewContinueAsNewError(ctx, VaultWorkflowType, VaultInput{VaultID: v.id, State: &st})
		}
		seen := v.version
		_ = workflow.Await(ctx, func() bool {
			return v.version != seen || ready(v.expiryTimer) || v.done(ctx) || v.readyToContinueAsNew(ctx)
		})
	}
}

// MemoDeleteSettings is the vault's memo field that holds its
// DeleteSettings, for items and people to read without a task of the
// vault (DescribeWorkflowExecution).
const MemoDeleteSettings = "deleteSettings"

// publish puts the vault's delete settings in its memo when they differ
// from what the memo says: at the start of every run, since a memo given at
// the start is not the vault's own, and after each change, in the same task
// as the change. What the memo says only ever raises an item's floor, or
// keeps a held delete waiting; a delete asks the vault itself.
func (v *vault) publish(ctx workflow.Context) error {
	now := DeleteSettings{SoftDeleteSettings: v.st.SoftDelete, MultiUserAuthorization: v.st.Mua.Enabled, Signers: SignersDigest(v.st.AllowedSigners),
		Run: workflow.GetInfo(ctx).WorkflowExecution.RunID}
	// A run that began before vaults published their hold replays as it
	// ran; every later run publishes it (one marker a run).
	if workflow.GetVersion(ctx, "publish-mass-delete-hold", workflow.DefaultVersion, 1) >= 1 {
		now.MassDeleteHeldSince, now.MassDeleteReleasedUntil = v.st.MassDelete.HeldSince.UTC(), v.st.MassDelete.ReleasedUntil.UTC()
	}
	if v.published != nil && *v.published == now {
		return nil
	}
	if err := workflow.UpsertMemo(ctx, map[string]any{MemoDeleteSettings: now}); err != nil {
		return err
	}
	v.published = &now
	return nil
}

func ready(f workflow.Future) bool { return f != nil && f.IsReady() }

// fired is true for a timer that ran to its end; one made ready by a
// cancellation is not a time that passed.
func fired(ctx workflow.Context, f workflow.Future) bool {
	return ready(f) && f.Get(ctx, nil) == nil
}

// done is true once an accepted deleteVault has answered and its alerts
// are out.
func (v *vault) done(ctx workflow.Context) bool {
	return v.deleted && workflow.AllHandlersFinished(ctx) && v.sender.drained()
}

func (v *vault) readyToContinueAsNew(ctx workflow.Context) bool {
	// An alert being delivered stays in the outbox until it is, so it is
	// carried and sent again rather than lost: no need to wait for it.
	info := workflow.GetInfo(ctx)
	return !v.deleted && (info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() >= maxVaultHistoryLength) &&
		workflow.AllHandlersFinished(ctx)
}

func (v *vault) registerHandlers(ctx workflow.Context) error {
	err := workflow.SetQueryHandler(ctx, QueryVaultStatus, func() (VaultStatus, error) { return v.status(), nil })
	if err != nil {
		return err
	}
	decide := func(approve bool) func(workflow.Context, DecisionRequest, []byte) (VaultStatus, error) {
		return func(ctx workflow.Context, req DecisionRequest, input []byte) (VaultStatus, error) {
			return v.decide(ctx, req, approve, input)
		}
	}
	return errors.Join(
		setVaultUpdate(ctx, UpdateSetSoftDelete, payload[SetSoftDeleteRequest](UpdateSetSoftDelete, `{"state": "AlwaysOn", "retentionDays": 30}`), v.setSoftDelete),
		setVaultUpdate(ctx, UpdateDeleteVault, requestPayload(UpdateDeleteVault), v.deleteVault),
		setVaultUpdate(ctx, UpdateEnableMua, payload[EnableMuaRequest](UpdateEnableMua, enableMuaExample), v.enableMua),
		setVaultUpdate(ctx, UpdateApprove, decisionPayload(UpdateApprove), decide(true)),
		setVaultUpdate(ctx, UpdateReject, decisionPayload(UpdateReject), decide(false)),
		setVaultUpdate(ctx, UpdateItemDelete, decodeItemDelete, func(ctx workflow.Context, req ItemDeleteRequest, _ []byte) (VaultAnswer, error) {
			return v.itemDelete(ctx, req)
		}),
		setVaultUpdate(ctx, UpdateSetAllowedSigners, payload[SetAllowedSignersRequest](UpdateSetAllowedSigners, setAllowedSignersExample), v.setAllowedSigners),
		setVaultUpdate(ctx, UpdateSetMassDeleteGuard, payload[SetMassDeleteGuardRequest](UpdateSetMassDeleteGuard, massDeleteExample), v.setMassDeleteGuard),
		setVaultUpdate(ctx, UpdateClearMassDeleteHold, requestPayload(UpdateClearMassDeleteHold), v.clearMassDeleteHold),
	)
}

// setVaultUpdate registers one of the vault's updates. Its validator only
// decodes the payload, so one that cannot be read leaves no trace; the
// handler gets it with its JSON text, which a signature covers, and applies
// the rules, so that every refusal by a rule is in the history, the audit
// and an alert.
func setVaultUpdate[Req, Res any](ctx workflow.Context, name string, decode func(converter.RawValue) (Req, error),
	handle func(workflow.Context, Req, []byte) (Res, error)) error {
	return workflow.SetUpdateHandlerWithOptions(ctx, name,
		func(ctx workflow.Context, raw converter.RawValue) (Res, error) {
			req, err := decode(raw)
			if err != nil {
				var none Res
				return none, refused(err)
			}
			return handle(ctx, req, payloadData(raw))
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, raw converter.RawValue) error {
			_, err := decode(raw)
			return refused(err)
		}},
	)
}

// payload reads update name's payload, a JSON object like example, into a T.
func payload[T any](name, example string) func(converter.RawValue) (T, error) {
	return func(raw converter.RawValue) (T, error) {
		var req T
		return req, decodePayload(name, raw, &req, example)
	}
}

// requestPayload reads update name's payload as a Request.
func requestPayload(name string) func(converter.RawValue) (Request, error) {
	return func(raw converter.RawValue) (Request, error) { return DecodeRequest(name, raw) }
}

// Critical operations are judged in the handler, not the validator: a
// refusal must leave a trace in the history, the audit and an alert.
func (v *vault) setSoftDelete(ctx workflow.Context, req SetSoftDeleteRequest, input []byte) (VaultStatus, error) {
	if err := v.ready(ctx); err != nil {
		return VaultStatus{}, err
	}
	who := actor{by: requester(req.RequestedBy)}
	next, err := ChangeSoftDelete(v.id, v.st.SoftDelete, req)
	if err == nil && v.settings.StoreLocks && next.State == SoftDeleteDisabled {
		err = &Refusal{Message: fmt.Sprintf("vault %s keeps its data on a store with object lock, which holds every object until its soft-delete window ends: "+
			"soft delete cannot be Disabled there; keep it Enabled or AlwaysOn", v.id)}
	}
	if err != nil {
		v.refuse(ctx, UpdateSetSoftDelete, who, err)
		return VaultStatus{}, refused(err)
	}
	critical := CriticalSoftDeleteChange(v.st.SoftDelete, next)
	if who, err = v.signedBy(ctx, UpdateSetSoftDelete, input, who, critical); err != nil {
		return VaultStatus{}, err
	}
	if v.st.Mua.Enabled && critical {
		req.Signature = Signature{}
		return v.openRequest(ctx, MuaRequest{
			Operation: UpdateSetSoftDelete, RequestedBy: who.by, Signer: who.signer, Reason: req.Reason, SoftDelete: &req,
			Summary: fmt.Sprintf("set soft delete to %s, %d days", next.State, next.RetentionDays),
		})
	}
	v.changeSoftDelete(ctx, who, next, req.Reason)
	return v.status(), nil
}

// signedBy authenticates a request to the vault itself (authenticate, in
// trust.go); a refusal is audited and alerted, and changes nothing else.
func (v *vault) signedBy(ctx workflow.Context, op string, input []byte, who actor, required bool) (actor, error) {
	signer, err := v.authenticate(ctx, op, VaultWorkflowID(v.id), input, who.by, required)
	if err != nil {
		v.refuse(ctx, op, actor{by: who.by, signer: notVerified}, err)
		return who, refused(err)
	}
	return actor{by: who.by, signer: signer}, nil
}

func (v *vault) changeSoftDelete(ctx workflow.Context, who actor, next SoftDeleteSettings, reason string) {
	cur := v.st.SoftDelete
	detail := fmt.Sprintf("soft delete %s, %d days, reminder %s before purge (was %s, %d days, %s); applies to deletes from now on",
		next.State, next.RetentionDays, next.PurgeReminder, cur.State, cur.RetentionDays, cur.PurgeReminder)
	if reason != "" {
		detail += "; reason: " + reason
	}
	v.st.SoftDelete = next
	v.audit(ctx, UpdateSetSoftDelete, who, OutcomeAccepted, detail)
	v.version++
}

func (v *vault) deleteVault(ctx workflow.Context, req Request, input []byte) (VaultStatus, error) {
	if err := workflow.Await(ctx, func() bool { return v.verified }); err != nil {
		return VaultStatus{}, err
	}
	if v.deleted {
		return v.status(), nil
	}
	who, err := v.signedBy(ctx, UpdateDeleteVault, input, actor{by: requester(req.RequestedBy)}, true)
	if err != nil {
		return VaultStatus{}, err
	}
	// Checked before asking for approval too: approvers should not be
	// asked to approve what cannot be done.
	if err := v.deletable(ctx); err != nil {
		v.refuse(ctx, UpdateDeleteVault, who, err)
		return VaultStatus{}, refused(err)
	}
	if v.deleted {
		return v.status(), nil
	}
	if v.st.Mua.Enabled {
		return v.openRequest(ctx, MuaRequest{Operation: UpdateDeleteVault, RequestedBy: who.by, Signer: who.signer, Reason: req.Reason, Summary: "delete vault " + v.id})
	}
	v.markDeleted(ctx, who, req.Reason)
	return v.status(), nil
}

// deletable is nil when the vault holds no item with data, or says which.
func (v *vault) deletable(ctx workflow.Context) error {
	items, err := v.itemsForDeletion(ctx)
	if err != nil {
		return err
	}
	return DeleteVaultRefusal(v.id, items)
}

func (v *vault) markDeleted(ctx workflow.Context, who actor, reason string) {
	detail := "vault deleted"
	if reason != "" {
		detail += "; reason: " + reason
	}
	v.audit(ctx, UpdateDeleteVault, who, OutcomeAccepted, detail)
	v.deleted = true
	v.version++
}

// itemsForDeletion are the vault's items with data, each confirmed with its
// own workflow: the vault keeps no list of them, and visibility lags (an
// item purged a moment ago may still be listed as running). Search
// attributes are set only by the items themselves.
func (v *vault) itemsForDeletion(ctx workflow.Context) ([]ListedItem, error) {
	// A large vault takes a while: the heartbeat shows it is getting on.
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute,
		HeartbeatTimeout:    30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	var listed []ListedItem
	if err := workflow.ExecuteActivity(actx, ActivityListVaultItems, v.id).Get(ctx, &listed); err != nil {
		return nil, fmt.Errorf("vault %s cannot be deleted now: its items could not be checked (%s); try again", v.id, message(err))
	}
	return listed, nil
}

// actor is who asked for an operation: the name they gave and, for a
// person's operation, the key that signed it, Unsigned, or notVerified for
// a signature that was refused.
type actor struct{ by, signer string }

// notVerified is the signer of a request whose signature was refused.
const notVerified = "signature not verified"

// refuse records a refused critical operation and raises an alert.
func (v *vault) refuse(ctx workflow.Context, op string, who actor, err error) {
	v.audit(ctx, op, who, OutcomeRejected, err.Error())
	queueAlert(&v.st.Outbox, Alert{
		Kind: AlertCriticalRejected, VaultID: v.id, RequestedBy: who.by, Signer: who.signer,
		Time: workflow.Now(ctx).UTC(), Detail: op + " refused: " + err.Error(),
	})
	v.version++
}

func (v *vault) audit(ctx workflow.Context, op string, who actor, outcome, detail string) {
	v.st.Audit = appendAudit(v.st.Audit, AuditEntry{
		Time: workflow.Now(ctx).UTC(), Operation: op, RequestedBy: who.by, Signer: who.signer, Outcome: outcome, Detail: detail,
	})
}

func (v *vault) status() VaultStatus {
	s := VaultStatus{
		VaultID:    v.id,
		SoftDelete: v.st.SoftDelete,
		Items:      v.st.Items,
		Deleted:    v.deleted,
		Audit:      append([]AuditEntry{}, v.st.Audit...),

		MultiUserAuthorization: v.st.Mua,
		Requests:               append([]MuaRequest{}, v.st.Requests...),
		SignaturesRequired:     v.st.AllowedSigners != "",
	}
	// The text was checked when it was set.
	s.AllowedSigners, _ = ParseAllowedSigners(v.st.AllowedSigners)
	s.SoftDeleteRetentionOverride = v.settings.overrideNote()
	g := v.st.Guard
	s.MassDeleteGuard = MassDeleteGuardStatus{Enabled: !g.Off, Threshold: g.threshold(v.st.Items.HoldingData),
		Window: g.window().String(), Summary: g.String(), HeldSince: v.st.MassDelete.HeldSince}
	return s
}
