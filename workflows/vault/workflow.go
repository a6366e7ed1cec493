// Package vault is a vault's workflow: Decide (decide.go) is its rulebook,
// and Vault (workflow.go) gathers the facts it asks for.
package vault

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"
	"go.temporal.io/sdk/workflow"

	"recoveryvault/internal/signing"
	"recoveryvault/workflows/protocol"
)

// maxVaultHistoryLength bounds a vault's history, in events, whether or
// not the server suggests continue-as-new.
const maxVaultHistoryLength = 4000

// MemoDeleteSettings is the memo field of the vault's DeleteSettings.
const MemoDeleteSettings = "deleteSettings"

// NewVault returns the Vault workflow bound to a worker's settings; register
// it under VaultWorkflowType.
func NewVault(s protocol.Settings) func(workflow.Context, VaultInput) (VaultStatus, error) {
	return func(ctx workflow.Context, in VaultInput) (VaultStatus, error) { return runVault(ctx, in, s) }
}

// Vault holds a vault's settings and answers its items' deletes; what
// items need it publishes in its memo.
func Vault(ctx workflow.Context, in VaultInput) (VaultStatus, error) {
	return runVault(ctx, in, protocol.Settings{})
}

type vault struct {
	st       VaultState
	settings protocol.Settings
	sender   *protocol.AlertSender
	// verified is false until carried state has been checked.
	verified bool
	// published is what the memo says, as of this run.
	published *protocol.DeleteSettings
	// Commands are decided one at a time in the order they came: each
	// takes a ticket; served is the next one decided.
	tickets, served int
	// decisions counts the decisions kept, to wake the loop.
	decisions int
	// expiry fires at the earliest expiry of a pending request.
	expiry protocol.Timer
}

func runVault(ctx workflow.Context, in VaultInput, settings protocol.Settings) (VaultStatus, error) {
	if err := protocol.ValidateID("vaultId", in.VaultID); err != nil {
		return VaultStatus{}, temporal.NewNonRetryableApplicationError(err.Error(), protocol.ErrTypeInvalidInput, nil)
	}
	if err := protocol.CheckIdentity(ctx, protocol.VaultWorkflowID(in.VaultID)); err != nil {
		return VaultStatus{}, temporal.NewNonRetryableApplicationError(err.Error(), protocol.ErrTypeInvalidInput, nil)
	}
	v := &vault{settings: settings, st: VaultState{SoftDelete: protocol.DefaultSoftDeleteSettings()}}
	if in.State != nil {
		v.st = *in.State
	}
	v.st.ID = in.VaultID
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
		if v.expiry.Take(ctx) {
			_, _ = v.run(ctx, Command{Op: opExpire, By: signing.System})
			continue
		}
		if v.readyToContinueAsNew(ctx) {
			st := v.st
			return VaultStatus{}, workflow.NewContinueAsNewError(ctx, protocol.VaultWorkflowType, VaultInput{VaultID: v.st.ID, State: &st})
		}
		seen := v.decisions
		_ = workflow.Await(ctx, func() bool {
			return v.decisions != seen || v.expiry.Ready() || v.done(ctx) || v.readyToContinueAsNew(ctx)
		})
	}
}

// run decides a command in its turn. Facts about items are gathered before
// the turn, so many checks run at once; the count, in turn.
func (v *vault) run(ctx workflow.Context, c Command) (Decision, error) {
	if err := workflow.Await(ctx, func() bool { return v.verified }); err != nil {
		return Decision{}, err
	}
	f := Facts{Settings: v.settings}
	if d, _ := Decide(v.st, c, v.now(ctx, f)); d.Ask == AskItems {
		v.gather(ctx, d.Ask, c, &f)
	}
	ticket := v.tickets
	v.tickets++
	defer func() { v.served++ }()
	for {
		d, _ := Decide(v.st, c, v.now(ctx, f))
		if d.Ask != AskCaller && d.Ask != AskItem {
			break
		}
		v.gather(ctx, d.Ask, c, &f)
	}
	if err := workflow.Await(ctx, func() bool { return v.served == ticket }); err != nil {
		return Decision{}, err
	}
	for {
		d, err := Decide(v.st, c, v.now(ctx, f))
		if d.Ask == "" {
			v.st = d.State
			v.decisions++
			return d, err
		}
		v.gather(ctx, d.Ask, c, &f)
	}
}

func (v *vault) now(ctx workflow.Context, f Facts) Facts {
	f.Now = workflow.Now(ctx)
	return f
}

// gather runs the activity that answers ask.
func (v *vault) gather(ctx workflow.Context, ask Ask, c Command, f *Facts) {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
	})
	switch ask {
	case AskCount:
		cctx := workflow.WithStartToCloseTimeout(actx, 10*time.Second)
		var n int
		err := workflow.ExecuteActivity(cctx, protocol.ActivityCountVaultItems, v.st.ID).Get(ctx, &n)
		count := v.st.Items
		if err != nil {
			workflow.GetLogger(ctx).Warn("Vault's items not counted; the last count stands", "vault", v.st.ID, "error", err)
			count.Tried = workflow.Now(ctx)
		} else {
			count = ItemCount{HoldingData: n, At: workflow.Now(ctx).UTC()}
		}
		f.Count = &count
	case AskItems:
		// A large vault takes a while: the heartbeat shows it is getting on.
		lctx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
			StartToCloseTimeout: 10 * time.Minute,
			HeartbeatTimeout:    30 * time.Second,
			RetryPolicy:         &temporal.RetryPolicy{MaximumAttempts: 3},
		})
		var listed []protocol.ListedItem
		if err := workflow.ExecuteActivity(lctx, protocol.ActivityListVaultItems, v.st.ID).Get(ctx, &listed); err != nil {
			f.ItemsErr = protocol.Message(err)
		} else {
			f.Items = &listed
		}
	case AskCaller, AskItem:
		req := c.Payload.(protocol.ItemDeleteRequest)
		var run protocol.RunInfo
		check := &Check{}
		err := workflow.ExecuteActivity(actx, protocol.ActivityDescribeRun, protocol.WorkflowID(v.st.ID, req.ItemID), "").Get(ctx, &run)
		switch {
		case err != nil:
			check.Err = protocol.Message(err)
		case ask == AskCaller:
			check.Why = askedByItem(ctx, req.ItemID, run)
		case !run.Running || run.WorkflowType != protocol.WorkflowType || run.FirstRunID != req.Incarnation:
			check.Why = fmt.Sprintf("vault %s holds no item %s with data to delete", v.st.ID, req.ItemID)
		}
		if ask == AskCaller {
			f.Caller = check
		} else {
			f.Item = check
		}
	}
}

// askedByItem says why a delete did not come from its item's own AskVault
// activity (update ID "run/activity"), "" when it did.
func askedByItem(ctx workflow.Context, itemID string, info protocol.RunInfo) string {
	id := workflow.GetCurrentUpdateInfo(ctx).ID
	run, act, _ := strings.Cut(id, "/")
	if !info.Running || info.WorkflowType != protocol.WorkflowType || info.RunID != run || !slices.Contains(info.Asking, act) {
		return fmt.Sprintf("the delete of item %s did not come from the item (update %q): a delete reaches its vault from its item only; nothing changed",
			itemID, protocol.Clip(id, protocol.MaxNameBytes))
	}
	return ""
}

// publish puts the vault's delete settings in its memo when they change,
// and at the start of every run: a memo given at the start is not its own.
func (v *vault) publish(ctx workflow.Context) error {
	now := protocol.DeleteSettings{SoftDeleteSettings: v.st.SoftDelete, MultiUserAuthorization: v.st.Mua.Enabled, Signers: signing.SignersDigest(v.st.AllowedSigners),
		Run:            workflow.GetInfo(ctx).WorkflowExecution.RunID,
		MassDeleteHold: protocol.Hold{HeldSince: v.st.MassDelete.HeldSince.UTC(), ReleasedUntil: v.st.MassDelete.ReleasedUntil.UTC()}}
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
	return v.st.Deleted && workflow.AllHandlersFinished(ctx) && v.sender.Drained()
}

func (v *vault) readyToContinueAsNew(ctx workflow.Context) bool {
	// An alert being delivered stays in the outbox until it is, so it is
	// carried and sent again rather than lost: no need to wait for it.
	info := workflow.GetInfo(ctx)
	return !v.st.Deleted && (info.GetContinueAsNewSuggested() || info.GetCurrentHistoryLength() >= maxVaultHistoryLength) &&
		workflow.AllHandlersFinished(ctx)
}

// armExpiry keeps the timer at the earliest pending request's expiry.
func (v *vault) armExpiry(ctx workflow.Context) {
	var next time.Time
	for _, r := range v.st.Requests {
		if r.State == protocol.RequestPending && (next.IsZero() || r.ExpiresAt.Before(next)) {
			next = r.ExpiresAt
		}
	}
	v.expiry.Arm(ctx, next, "approval expiry")
}

func (v *vault) registerHandlers(ctx workflow.Context) error {
	err := workflow.SetQueryHandler(ctx, protocol.QueryVaultStatus, func() (VaultStatus, error) { return v.status(), nil })
	if err != nil {
		return err
	}
	errs := []error{
		update(ctx, protocol.UpdateItemDelete, decodeItemDelete, v.itemDelete),
		update(ctx, protocol.UpdateApprove, decisionPayload(protocol.UpdateApprove), v.decide),
		update(ctx, protocol.UpdateReject, decisionPayload(protocol.UpdateReject), v.decide),
	}
	for _, op := range []string{protocol.UpdateSetSoftDelete, protocol.UpdateEnableMua, UpdateSetAllowedSigners, UpdateSetMassDeleteGuard} {
		errs = append(errs, update(ctx, op, settingPayload(op), v.change))
	}
	for _, op := range []string{UpdateClearMassDeleteHold, protocol.UpdateDeleteVault} {
		errs = append(errs, update(ctx, op, requestPayload(op), v.change))
	}
	return errors.Join(errs...)
}

// update registers an update. Its validator only decodes the payload; the
// handler decides, so every refusal by a rule is in the history.
func update[Res any](ctx workflow.Context, name string, decode func(converter.RawValue) (any, error),
	handle func(workflow.Context, Command) (Res, error)) error {
	return workflow.SetUpdateHandlerWithOptions(ctx, name,
		func(ctx workflow.Context, raw converter.RawValue) (Res, error) {
			payload, err := decode(raw)
			if err != nil {
				var none Res
				return none, protocol.Final(err)
			}
			return handle(ctx, Command{Op: name, Payload: payload, Input: protocol.PayloadData(raw)})
		},
		workflow.UpdateHandlerOptions{Validator: func(ctx workflow.Context, raw converter.RawValue) error {
			_, err := decode(raw)
			return protocol.Final(err)
		}},
	)
}

// change decides a setting command.
func (v *vault) change(ctx workflow.Context, c Command) (VaultStatus, error) {
	d, err := v.run(ctx, c)
	if err != nil {
		return VaultStatus{}, protocol.Final(err)
	}
	return v.statusWith(d.Request), nil
}

func (v *vault) itemDelete(ctx workflow.Context, c Command) (protocol.VaultAnswer, error) {
	d, err := v.run(ctx, c)
	if err != nil || d.Answer == nil {
		return protocol.VaultAnswer{}, protocol.Final(err)
	}
	return *d.Answer, nil
}

// decide approves or rejects a request. An approved delete is sent to its
// item, with the approval as its approver signed it.
func (v *vault) decide(ctx workflow.Context, c Command) (VaultStatus, error) {
	d, err := v.run(ctx, c)
	if err != nil {
		return VaultStatus{}, protocol.Final(err)
	}
	if t := d.Tell; t != nil {
		told := Command{Op: opTold, RequestID: t.Request.RequestID}
		if err := tellItem(ctx, v.st.ID, t); err != nil {
			told.Failure = err.Error()
		}
		if _, err := v.run(ctx, told); err != nil {
			return VaultStatus{}, protocol.Final(err)
		}
	}
	return v.statusWith(d.Request), nil
}

// tellItem signals an approved delete to its item, which checks it itself.
func tellItem(ctx workflow.Context, vaultID string, t *Tell) error {
	actx := workflow.WithActivityOptions(ctx, workflow.ActivityOptions{
		StartToCloseTimeout: 30 * time.Second,
		RetryPolicy: &temporal.RetryPolicy{
			InitialInterval:        time.Second,
			MaximumAttempts:        5,
			NonRetryableErrorTypes: []string{protocol.ErrTypeNoVault},
		},
	})
	payload, _ := json.Marshal(protocol.DeleteApproval{RequestID: t.Request.RequestID, Approval: t.Approval})
	in := protocol.MessageInput{
		WorkflowID: protocol.WorkflowID(vaultID, t.Request.ItemID), WorkflowType: protocol.WorkflowType, Name: protocol.SignalDeleteApproved, Payload: payload,
	}
	if err := workflow.ExecuteActivity(actx, protocol.ActivitySignal, in).Get(ctx, nil); err != nil {
		return errors.New(protocol.Message(err))
	}
	return nil
}

// settingPayload reads a setting's payload, a JSON object like its example.
func settingPayload(op string) func(converter.RawValue) (any, error) {
	return func(raw converter.RawValue) (any, error) {
		switch op {
		case protocol.UpdateSetSoftDelete:
			return decodeAs[protocol.SetSoftDeleteRequest](op, raw)
		case protocol.UpdateEnableMua:
			return decodeAs[protocol.EnableMuaRequest](op, raw)
		case UpdateSetAllowedSigners:
			return decodeAs[protocol.SetAllowedSignersRequest](op, raw)
		}
		return decodeAs[protocol.SetMassDeleteGuardRequest](op, raw)
	}
}

func decodeAs[T any](op string, raw converter.RawValue) (any, error) {
	var req T
	err := protocol.DecodePayload(op, raw, &req, settings[op].example)
	return req, err
}

// requestPayload reads update name's payload as a Request.
func requestPayload(name string) func(converter.RawValue) (any, error) {
	return func(raw converter.RawValue) (any, error) { return protocol.DecodeRequest(name, raw) }
}

// decisionPayload reads approve's or reject's payload, which must name the
// request.
func decisionPayload(name string) func(converter.RawValue) (any, error) {
	return func(raw converter.RawValue) (any, error) {
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

func decodeItemDelete(raw converter.RawValue) (any, error) {
	var req protocol.ItemDeleteRequest
	if err := protocol.DecodePayload(protocol.UpdateItemDelete, raw, &req, `{"itemId": "vm1", "requestedBy": "alice", "at": "2026-12-01T10:00:00Z"}`); err != nil {
		return req, err
	}
	return req, protocol.ValidateID("itemId", req.ItemID)
}

// statusWith is the status, with the request an update opened or decided.
func (v *vault) statusWith(r *protocol.MuaRequest) VaultStatus {
	st := v.status()
	st.Request = r
	return st
}

func (v *vault) status() VaultStatus {
	s := VaultStatus{
		VaultID:    v.st.ID,
		SoftDelete: v.st.SoftDelete,
		Items:      v.st.Items,
		Deleted:    v.st.Deleted,
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
		Window: g.period().String(), Summary: g.String(), HeldSince: v.st.MassDelete.HeldSince}
	return s
}
