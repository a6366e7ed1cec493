// Package vault is a vault's workflow: its soft-delete settings, multi-user
// authorization, allowed signers and mass-delete guard, and the answer every
// delete of its items gets.
package vault

import (
	"errors"
	"fmt"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"recoveryvault/internal/signing"
	"recoveryvault/workflows/protocol"
)

// VaultInput starts a Vault. State is set only by continue-as-new.
type VaultInput struct {
	VaultID string      `json:"vaultId"`
	State   *VaultState `json:"state,omitempty"`
}

// VaultState is everything a vault carries across continue-as-new.
type VaultState struct {
	SoftDelete protocol.SoftDeleteSettings `json:"softDelete"`
	// Items is the vault's last count of its items that hold data, from
	// visibility: the vault carries no list of them, so what it carries
	// stays the same size however many items it holds.
	Items  ItemCount             `json:"items"`
	Audit  []protocol.AuditEntry `json:"audit"`
	Outbox []protocol.Alert      `json:"outbox,omitempty"`
	Mua    MuaSettings           `json:"mua"`
	// Requests are the critical operations pending approval and the last
	// ones decided; RequestSequence numbers them.
	Requests        []protocol.MuaRequest `json:"requests,omitempty"`
	RequestSequence int                   `json:"requestSequence,omitempty"`
	// AllowedSigners are the operators' public keys, in OpenSSH's
	// allowed_signers format: while set, critical operations must be
	// signed. Nonces are the signed requests seen within the skew.
	AllowedSigners string              `json:"allowedSigners,omitempty"`
	Nonces         []signing.SeenNonce `json:"nonces,omitempty"`
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
	VaultID                     string                      `json:"vaultId"`
	SoftDelete                  protocol.SoftDeleteSettings `json:"softDelete"`
	SoftDeleteRetentionOverride string                      `json:"softDeleteRetentionOverride,omitempty"`
	// Items is the vault's last count of its items holding data, for its
	// mass-delete guard; lists and counts by state come from visibility
	// (ItemsQuery), where each item publishes its own state.
	Items                  ItemCount             `json:"items"`
	MultiUserAuthorization MuaSettings           `json:"multiUserAuthorization"`
	Requests               []protocol.MuaRequest `json:"requests"`
	// SignaturesRequired is true while the vault holds allowed signers,
	// listed in AllowedSigners.
	SignaturesRequired bool                `json:"signaturesRequired"`
	AllowedSigners     []signing.SignerKey `json:"allowedSigners"`
	// MassDeleteGuard is the guard's setting and what it is now: its
	// threshold for the vault's items, and since when it holds deletes.
	MassDeleteGuard MassDeleteGuardStatus `json:"massDeleteGuard"`
	// Request is the request an update opened or decided, in its answer.
	Request *protocol.MuaRequest  `json:"request,omitempty"`
	Deleted bool                  `json:"deleted"`
	Audit   []protocol.AuditEntry `json:"audit"`
}

// maxVaultHistoryLength bounds a vault's history, in events, whether or
// not the server suggests continue-as-new.
const maxVaultHistoryLength = 4000

// NewVault returns the Vault workflow bound to a worker's settings; register
// it under VaultWorkflowType.
func NewVault(s protocol.Settings) func(workflow.Context, VaultInput) (VaultStatus, error) {
	return func(ctx workflow.Context, in VaultInput) (VaultStatus, error) { return runVault(ctx, in, s) }
}

// Vault holds a vault's soft-delete settings, multi-user authorization,
// allowed signers and mass-delete guard, and answers its items' deletes.
// It publishes the settings an item needs in its memo, which the server
// serves without a task of the vault; the items publish their own states
// in visibility, so the vault never hears of an item's other changes.
func Vault(ctx workflow.Context, in VaultInput) (VaultStatus, error) {
	return runVault(ctx, in, protocol.Settings{})
}

type vault struct {
	id       string
	st       VaultState
	settings protocol.Settings
	deleted  bool
	version  int
	sender   *protocol.AlertSender
	verified bool
	// published is what the memo says, as of this run.
	published *protocol.DeleteSettings
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

func runVault(ctx workflow.Context, in VaultInput, settings protocol.Settings) (VaultStatus, error) {
	if err := protocol.ValidateID("vaultId", in.VaultID); err != nil {
		return VaultStatus{}, temporal.NewNonRetryableApplicationError(err.Error(), protocol.ErrTypeInvalidInput, nil)
	}
	if err := protocol.CheckIdentity(ctx, protocol.VaultWorkflowID(in.VaultID)); err != nil {
		return VaultStatus{}, temporal.NewNonRetryableApplicationError(err.Error(), protocol.ErrTypeInvalidInput, nil)
	}
	v := &vault{id: in.VaultID, settings: settings}
	if in.State != nil {
		v.st = *in.State
	} else {
		v.st = VaultState{SoftDelete: protocol.DefaultSoftDeleteSettings()}
	}
	// Handlers first, for an update in the run's first task; they wait
	// until carried state has been verified.
	v.verified = in.State == nil
	if err := v.registerHandlers(ctx); err != nil {
		return VaultStatus{}, err
	}
	if in.State != nil {
		// Settings such as AlwaysOn must not be forgeable by a start input.
		if err := protocol.CheckCarriedState(ctx); err != nil {
			return VaultStatus{}, temporal.NewNonRetryableApplicationError(err.Error(), protocol.ErrTypeInvalidInput, nil)
		}
		v.verified = true
	}
	v.sender = protocol.StartAlertSender(ctx, &v.st.Outbox)

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
		if protocol.Fired(ctx, v.expiryTimer) {
			v.expiryTimer, v.cancelExpiry = nil, nil
			v.expireRequests(ctx)
			continue
		}
		if v.readyToContinueAsNew(ctx) {
			st := v.st
			return VaultStatus{}, workflow.NewContinueAsNewError(ctx, protocol.VaultWorkflowType, VaultInput{VaultID: v.id, State: &st})
		}
		seen := v.version
		_ = workflow.Await(ctx, func() bool {
			return v.version != seen || protocol.Ready(v.expiryTimer) || v.done(ctx) || v.readyToContinueAsNew(ctx)
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
	now := protocol.DeleteSettings{SoftDeleteSettings: v.st.SoftDelete, MultiUserAuthorization: v.st.Mua.Enabled, Signers: signing.SignersDigest(v.st.AllowedSigners),
		Run: workflow.GetInfo(ctx).WorkflowExecution.RunID, MassDeleteHeldSince: v.st.MassDelete.HeldSince.UTC(), MassDeleteReleasedUntil: v.st.MassDelete.ReleasedUntil.UTC()}
	if v.published != nil && *v.published == now {
		return nil
	}
	if err := workflow.UpsertMemo(ctx, map[string]any{MemoDeleteSettings: now}); err != nil {
		return err
	}
	v.published = &now
	return nil
}

// done is true once an accepted deleteVault has answered and its alerts
// are out.
func (v *vault) done(ctx workflow.Context) bool {
	return v.deleted && workflow.AllHandlersFinished(ctx) && v.sender.Drained()
}

func (v *vault) readyToContinueAsNew(ctx workflow.Context) bool {
	// An alert being delivered stays in the outbox until it is, so it is
	// carried and sent again rather than lost: no need to wait for it.
	info := workflow.GetInfo(ctx)
	return !v.deleted && (info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() >= maxVaultHistoryLength) &&
		workflow.AllHandlersFinished(ctx)
}

func (v *vault) registerHandlers(ctx workflow.Context) error {
	err := workflow.SetQueryHandler(ctx, protocol.QueryVaultStatus, func() (VaultStatus, error) { return v.status(), nil })
	if err != nil {
		return err
	}
	decide := func(approve bool) func(workflow.Context, protocol.DecisionRequest, []byte) (VaultStatus, error) {
		return func(ctx workflow.Context, req protocol.DecisionRequest, input []byte) (VaultStatus, error) {
			return v.decide(ctx, req, approve, input)
		}
	}
	return errors.Join(
		setVaultUpdate(ctx, protocol.UpdateSetSoftDelete, payload[protocol.SetSoftDeleteRequest](protocol.UpdateSetSoftDelete, `{"state": "AlwaysOn", "retentionDays": 30}`), v.setSoftDelete),
		setVaultUpdate(ctx, protocol.UpdateDeleteVault, requestPayload(protocol.UpdateDeleteVault), v.deleteVault),
		setVaultUpdate(ctx, protocol.UpdateEnableMua, payload[protocol.EnableMuaRequest](protocol.UpdateEnableMua, enableMuaExample), v.enableMua),
		setVaultUpdate(ctx, protocol.UpdateApprove, decisionPayload(protocol.UpdateApprove), decide(true)),
		setVaultUpdate(ctx, protocol.UpdateReject, decisionPayload(protocol.UpdateReject), decide(false)),
		setVaultUpdate(ctx, protocol.UpdateItemDelete, decodeItemDelete, func(ctx workflow.Context, req protocol.ItemDeleteRequest, _ []byte) (protocol.VaultAnswer, error) {
			return v.itemDelete(ctx, req)
		}),
		setVaultUpdate(ctx, UpdateSetAllowedSigners, payload[protocol.SetAllowedSignersRequest](UpdateSetAllowedSigners, setAllowedSignersExample), v.setAllowedSigners),
		setVaultUpdate(ctx, UpdateSetMassDeleteGuard, payload[protocol.SetMassDeleteGuardRequest](UpdateSetMassDeleteGuard, massDeleteExample), v.setMassDeleteGuard),
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
				return none, protocol.Refused(err)
			}
			return handle(ctx, req, protocol.PayloadData(raw))
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, raw converter.RawValue) error {
			_, err := decode(raw)
			return protocol.Refused(err)
		}},
	)
}

// payload reads update name's payload, a JSON object like example, into a T.
func payload[T any](name, example string) func(converter.RawValue) (T, error) {
	return func(raw converter.RawValue) (T, error) {
		var req T
		return req, protocol.DecodePayload(name, raw, &req, example)
	}
}

// requestPayload reads update name's payload as a Request.
func requestPayload(name string) func(converter.RawValue) (protocol.Request, error) {
	return func(raw converter.RawValue) (protocol.Request, error) { return protocol.DecodeRequest(name, raw) }
}

// Critical operations are judged in the handler, not the validator: a
// refusal must leave a trace in the history, the audit and an alert.
func (v *vault) setSoftDelete(ctx workflow.Context, req protocol.SetSoftDeleteRequest, input []byte) (VaultStatus, error) {
	if err := v.ready(ctx); err != nil {
		return VaultStatus{}, err
	}
	who := actor{by: protocol.Requester(req.RequestedBy)}
	next, err := ChangeSoftDelete(v.id, v.st.SoftDelete, req)
	if err == nil && v.settings.StoreLocks && next.State == protocol.SoftDeleteDisabled {
		err = &protocol.Refusal{Message: fmt.Sprintf("vault %s keeps its data on a store with object lock, which holds every object until its soft-delete window ends: "+
			"soft delete cannot be Disabled there; keep it Enabled or AlwaysOn", v.id)}
	}
	if err != nil {
		v.refuse(ctx, protocol.UpdateSetSoftDelete, who, err)
		return VaultStatus{}, protocol.Refused(err)
	}
	critical := CriticalSoftDeleteChange(v.st.SoftDelete, next)
	if who, err = v.signedBy(ctx, protocol.UpdateSetSoftDelete, input, who, critical); err != nil {
		return VaultStatus{}, err
	}
	if v.st.Mua.Enabled && critical {
		req.Signature = signing.Signature{}
		return v.openRequest(ctx, protocol.MuaRequest{
			Operation: protocol.UpdateSetSoftDelete, RequestedBy: who.by, Signer: who.signer, Reason: req.Reason, SoftDelete: &req,
			Summary: fmt.Sprintf("set soft delete to %s, %d days", next.State, next.RetentionDays),
		})
	}
	v.changeSoftDelete(ctx, who, next, req.Reason)
	return v.status(), nil
}

// signedBy authenticates a request to the vault itself (authenticate, in
// trust.go); a refusal is audited and alerted, and changes nothing else.
func (v *vault) signedBy(ctx workflow.Context, op string, input []byte, who actor, required bool) (actor, error) {
	signer, err := v.authenticate(ctx, op, protocol.VaultWorkflowID(v.id), input, who.by, required)
	if err != nil {
		v.refuse(ctx, op, actor{by: who.by, signer: notVerified}, err)
		return who, protocol.Refused(err)
	}
	return actor{by: who.by, signer: signer}, nil
}

func (v *vault) changeSoftDelete(ctx workflow.Context, who actor, next protocol.SoftDeleteSettings, reason string) {
	cur := v.st.SoftDelete
	detail := fmt.Sprintf("soft delete %s, %d days, reminder %s before purge (was %s, %d days, %s); applies to deletes from now on",
		next.State, next.RetentionDays, next.PurgeReminder, cur.State, cur.RetentionDays, cur.PurgeReminder)
	if reason != "" {
		detail += "; reason: " + reason
	}
	v.st.SoftDelete = next
	v.audit(ctx, protocol.UpdateSetSoftDelete, who, protocol.OutcomeAccepted, detail)
	v.version++
}

func (v *vault) deleteVault(ctx workflow.Context, req protocol.Request, input []byte) (VaultStatus, error) {
	if err := workflow.Await(ctx, func() bool { return v.verified }); err != nil {
		return VaultStatus{}, err
	}
	if v.deleted {
		return v.status(), nil
	}
	who, err := v.signedBy(ctx, protocol.UpdateDeleteVault, input, actor{by: protocol.Requester(req.RequestedBy)}, true)
	if err != nil {
		return VaultStatus{}, err
	}
	// Checked before asking for approval too: approvers should not be
	// asked to approve what cannot be done.
	if err := v.deletable(ctx); err != nil {
		v.refuse(ctx, protocol.UpdateDeleteVault, who, err)
		return VaultStatus{}, protocol.Refused(err)
	}
	if v.deleted {
		return v.status(), nil
	}
	if v.st.Mua.Enabled {
		return v.openRequest(ctx, protocol.MuaRequest{Operation: protocol.UpdateDeleteVault, RequestedBy: who.by, Signer: who.signer, Reason: req.Reason, Summary: "delete vault " + v.id})
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
	v.audit(ctx, protocol.UpdateDeleteVault, who, protocol.OutcomeAccepted, detail)
	v.deleted = true
	v.version++
}

// itemsForDeletion are the vault's items with data, each confirmed with its
// own workflow: the vault keeps no list of them, and visibility lags (an
// item purged a moment ago may still be listed as running). Search
// attributes are set only by the items themselves.
func (v *vault) itemsForDeletion(ctx workflow.Context) ([]protocol.ListedItem, error) {
	// A large vault takes a while: the heartbeat shows it is getting on.
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 10 * time.Minute,
		HeartbeatTimeout:    30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	var listed []protocol.ListedItem
	if err := workflow.ExecuteActivity(actx, protocol.ActivityListVaultItems, v.id).Get(ctx, &listed); err != nil {
		return nil, fmt.Errorf("vault %s cannot be deleted now: its items could not be checked (%s); try again", v.id, protocol.Message(err))
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
	v.audit(ctx, op, who, protocol.OutcomeRejected, err.Error())
	protocol.QueueAlert(&v.st.Outbox, protocol.Alert{
		Kind: protocol.AlertCriticalRejected, VaultID: v.id, RequestedBy: who.by, Signer: who.signer,
		Time: workflow.Now(ctx).UTC(), Detail: op + " refused: " + err.Error(),
	})
	v.version++
}

func (v *vault) audit(ctx workflow.Context, op string, who actor, outcome, detail string) {
	v.st.Audit = protocol.AppendAudit(v.st.Audit, protocol.AuditEntry{
		Time: workflow.Now(ctx).UTC(), Operation: op, RequestedBy: who.by, Signer: who.signer, Outcome: outcome, Detail: detail,
	})
}

func (v *vault) status() VaultStatus {
	s := VaultStatus{
		VaultID:    v.id,
		SoftDelete: v.st.SoftDelete,
		Items:      v.st.Items,
		Deleted:    v.deleted,
		Audit:      append([]protocol.AuditEntry{}, v.st.Audit...),

		MultiUserAuthorization: v.st.Mua,
		Requests:               append([]protocol.MuaRequest{}, v.st.Requests...),
		SignaturesRequired:     v.st.AllowedSigners != "",
	}
	// The text was checked when it was set.
	s.AllowedSigners, _ = signing.ParseKeys(v.st.AllowedSigners)
	s.SoftDeleteRetentionOverride = v.settings.OverrideNote()
	g := v.st.Guard
	s.MassDeleteGuard = MassDeleteGuardStatus{Enabled: !g.Off, Threshold: g.threshold(v.st.Items.HoldingData),
		Window: g.window().String(), Summary: g.String(), HeldSince: v.st.MassDelete.HeldSince}
	return s
}
