package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	enumspb "go.temporal.io/api/enums/v1"
	"go.temporal.io/api/serviceerror"
	"go.temporal.io/sdk/client"
	"go.temporal.io/sdk/converter"
	"go.temporal.io/sdk/temporal"

	"recoveryvault/internal/items"
	"recoveryvault/internal/signing"
	"recoveryvault/workflows/item"
	"recoveryvault/workflows/protocol"
	"recoveryvault/workflows/vault"
)

type dialFunc func() (client.Client, string, error)

// app holds what every command shares: the flags and the connection.
type app struct {
	dial    dialFunc
	jsonOut bool
	// guardHolds says the delete that waits is held by the vault's
	// mass-delete guard, for the status printed next.
	guardHolds  bool
	vaultID     string
	itemID      string
	requestedBy string
	reason      string
	// yes confirms changes that cannot be undone, for scripts.
	yes bool
	// keyFile is the operator's private key, for vaults that require
	// signatures; without it, ssh-agent's keys are used.
	keyFile string
	out     io.Writer
}

func newRootCommand(dial dialFunc) *cobra.Command {
	a := &app{dial: dial}
	root := &cobra.Command{
		Use:   "starter",
		Short: "Drive Recovery Vault backup items",
		Long: "Drive Recovery Vault backup items through their workflow: every operation is a\n" +
			"Temporal update, so a refusal is shown at once with its reason.\n" +
			"Connects like the Temporal CLI: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE or a profile.",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			a.out = cmd.OutOrStdout()
		},
	}
	root.SetFlagErrorFunc(suggestFlag)
	root.PersistentFlags().BoolVar(&a.jsonOut, "json", false, "print JSON for scripts instead of tables")
	root.PersistentFlags().StringVar(&a.keyFile, "key", "", "your SSH private key, to sign critical operations on a vault that requires signatures (default: the key in ssh-agent listed for --requested-by)")

	itemFlags := func(cmd *cobra.Command) {
		cmd.Flags().StringVar(&a.vaultID, "vault", "", "vault ID (required)")
		cmd.Flags().StringVar(&a.itemID, "item", "", "item ID (required)")
		cmd.Flags().StringVar(&a.requestedBy, "requested-by", operatorName(), "who asks, for the audit trail (default: $USER, or the operating system's user)")
	}
	reasonFlag := func(cmd *cobra.Command) {
		cmd.Flags().StringVar(&a.reason, "reason", "", "why, for the audit trail")
	}

	protect := a.protectCommand()
	itemFlags(protect)

	status := &cobra.Command{
		Use:   "status",
		Short: "Show an item's state, deadline, recovery points and audit trail",
		Args:  cobra.NoArgs,
		RunE:  a.run(a.status),
	}
	itemFlags(status)

	root.AddCommand(protect, status, a.listCommand())
	for _, c := range []struct{ use, update, short string }{
		{"stop", protocol.UpdateStop, "Stop protection and retain data"},
		{"delete", protocol.UpdateDelete, "Soft-delete the backup data (purged when the window ends unless undeleted)"},
		{"undelete", protocol.UpdateUndelete, "Undelete soft-deleted data: the purge is cancelled, protection stays stopped"},
		{"resume", protocol.UpdateResume, "Resume protection; expired recovery points are collected now"},
		{"backup-now", protocol.UpdateBackupNow, "Take a backup now"},
		{"clear-anomaly", protocol.UpdateClearAnomaly, "Accept the suspect recovery points (--reason says why): older points expire again, deletes go on"},
	} {
		cmd := &cobra.Command{
			Use:   c.use,
			Short: c.short,
			Args:  cobra.NoArgs,
		}
		cmd.RunE = a.run(func(ctx context.Context, cl client.Client) error {
			var arg any = protocol.Request{RequestedBy: a.requestedBy, Reason: a.reason}
			if c.update == protocol.UpdateDelete {
				if err := a.named(c.use); err != nil {
					return err
				}
				if err := a.confirmPurge(ctx, cmd, cl); err != nil {
					return err
				}
			}
			if c.update == protocol.UpdateClearAnomaly {
				if err := a.named(c.use); err != nil {
					return err
				}
				if strings.TrimSpace(a.reason) == "" {
					return errors.New("clear-anomaly needs --reason: say whether it was a false alarm or a change you accept; nothing was sent")
				}
			}
			if c.update == protocol.UpdateDelete || c.update == protocol.UpdateClearAnomaly {
				var err error
				if arg, err = a.signed(ctx, cmd, cl, a.vaultID, c.update, a.workflowID(), arg); err != nil {
					return err
				}
			}
			return a.update(ctx, cl, c.update, arg)
		})
		itemFlags(cmd)
		reasonFlag(cmd)
		if c.update == protocol.UpdateDelete {
			yesFlag(cmd, &a.yes)
		}
		root.AddCommand(cmd)
	}
	root.AddCommand(a.restoreCommand(itemFlags), a.verifyCommand(itemFlags), a.vaultCommand(), a.loadCommand(), a.scaleCommand())
	return root
}

// suggestFlag adds to an unknown flag's error the flag of the command it
// was most likely meant to be, as cobra does for a mistyped command.
func suggestFlag(cmd *cobra.Command, err error) error {
	name, ok := strings.CutPrefix(err.Error(), "unknown flag: --")
	if !ok {
		return err
	}
	best, bestDistance := "", 3
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		d := distance(name, f.Name)
		if strings.HasPrefix(f.Name, name) || strings.HasPrefix(name, f.Name) {
			d = min(d, 1)
		}
		if d < bestDistance || (d == bestDistance && best == "") {
			best, bestDistance = f.Name, d
		}
	})
	if best == "" || bestDistance > 2 {
		return fmt.Errorf("%w; %s --help lists its flags", err, cmd.CommandPath())
	}
	return fmt.Errorf("%w; did you mean --%s?", err, best)
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// operatorName is who runs the starter: $USER, else the operating system's
// user, else "".
func operatorName() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	if u, err := currentUser(); err == nil {
		return u.Username
	}
	return ""
}

// currentUser is the operating system's user (a test stands in for it).
var currentUser = user.Current

// alwaysCritical are the vault's updates that are critical whatever they
// ask: under multi-user authorization each names its requester.
var alwaysCritical = map[string]bool{
	protocol.UpdateDeleteVault: true, protocol.UpdateEnableMua: true, protocol.UpdateApprove: true, protocol.UpdateReject: true,
	vault.UpdateSetAllowedSigners: true, vault.UpdateClearMassDeleteHold: true,
}

// named refuses a critical command when no one can be named as asking.
func (a *app) named(command string) error {
	if strings.TrimSpace(a.requestedBy) == "" {
		return fmt.Errorf("%s is a critical operation and must say who asks: neither $USER nor the operating system names you, so give --requested-by; nothing was sent", command)
	}
	return nil
}

func yesFlag(cmd *cobra.Command, yes *bool) {
	cmd.Flags().BoolVarP(yes, "yes", "y", false, "do not ask before a change that cannot be undone")
}

// confirmPurge asks before a delete that would purge at once: one on a
// vault whose soft delete is disabled.
func (a *app) confirmPurge(ctx context.Context, cmd *cobra.Command, cl client.Client) error {
	st, err := a.query(ctx, cl)
	if err != nil {
		return err
	}
	if st.ProtectionState != protocol.Protected && st.ProtectionState != protocol.ProtectionStopped {
		return nil // the item refuses, or the delete changes nothing
	}
	if _, disabled := items.WithVaultWindow(ctx, cl, st); disabled {
		return a.confirm(cmd, fmt.Sprintf("Soft delete is disabled for vault %s: deleting the backup data of item %s purges it at once, and it", a.vaultID, a.itemID))
	}
	return nil
}

// run validates the item flags, connects, and runs f.
func (a *app) run(f func(context.Context, client.Client) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, _ []string) error {
		if cmd.Flags().Lookup("item") != nil {
			if err := protocol.ValidateID("--vault", a.vaultID); err != nil {
				return err
			}
			if err := protocol.ValidateID("--item", a.itemID); err != nil {
				return err
			}
		}
		cl, _, err := a.dial()
		if err != nil {
			return err
		}
		defer cl.Close()
		// No deadline of our own: a restore may rightly take hours, and
		// Ctrl-C cancels the wait (the operation itself carries on).
		return f(cmd.Context(), cl)
	}
}

func (a *app) workflowID() string { return protocol.WorkflowID(a.vaultID, a.itemID) }

func (a *app) protectCommand() *cobra.Command {
	var in item.ItemInput
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "protect",
		Short: "Protect a directory: start its item workflow and wait for the first backup",
		Args:  cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, cl client.Client) error {
			in.VaultID, in.ItemID = a.vaultID, a.itemID
			// Said in flags: the workflow's check would name its fields.
			switch d := in.SoftDeleteRetentionDays; {
			case d < protocol.MinSoftDeleteRetentionDays || d > protocol.MaxSoftDeleteRetentionDays:
				return fmt.Errorf("--soft-delete-retention-days %d: soft-deleted data is kept %d to %d days", d, protocol.MinSoftDeleteRetentionDays, protocol.MaxSoftDeleteRetentionDays)
			case in.Policy.RetentionDays < protocol.MinRetentionDays || in.Policy.RetentionDays > protocol.MaxRetentionDays:
				return fmt.Errorf("--retention-days %d: recovery points are kept %d to %d days", in.Policy.RetentionDays, protocol.MinRetentionDays, protocol.MaxRetentionDays)
			}
			if err := in.Validate(); err != nil {
				return err
			}
			run, err := cl.ExecuteWorkflow(ctx, client.StartWorkflowOptions{
				ID:                       a.workflowID(),
				TaskQueue:                protocol.TaskQueue,
				WorkflowIDConflictPolicy: enumspb.WORKFLOW_ID_CONFLICT_POLICY_FAIL,
				// Otherwise the SDK hands back the running item as if started.
				WorkflowExecutionErrorWhenAlreadyStarted: true,
				// No search attributes here: the item publishes them itself
				// once its first backup has proved the source, so a refused
				// item is never listed.
			}, item.BackupItem, in)
			var started *serviceerror.WorkflowExecutionAlreadyStarted
			if errors.As(err, &started) {
				st, qerr := a.query(ctx, cl)
				if qerr != nil {
					return fmt.Errorf("item %s of vault %s already exists (workflow %s is running), and its status could not be read: %w", a.itemID, a.vaultID, a.workflowID(), qerr)
				}
				return items.AlreadyThere(st)
			}
			if err != nil {
				return fmt.Errorf("start workflow %s: %w", a.workflowID(), err)
			}
			st, err := a.waitFirstBackup(ctx, cl, run, wait)
			if err != nil {
				return err
			}
			return a.print(st)
		}),
	}
	cmd.Flags().StringVar(&in.SourcePath, "source", "", "absolute path of the directory to back up, on the worker's machine (required)")
	cmd.Flags().StringVar(&in.Policy.Frequency, "frequency", "24h", "time between scheduled backups (at least 1m; \"24h\", \"1d\")")
	cmd.Flags().IntVar(&in.Policy.RetentionDays, "retention-days", 30, "days a recovery point is kept while protected (at least 1)")
	cmd.Flags().IntVar(&in.SoftDeleteRetentionDays, "soft-delete-retention-days", protocol.DefaultSoftDeleteRetentionDays,
		"days deleted data stays recoverable (14 to 180)")
	cmd.Flags().DurationVar(&wait, "wait", 2*time.Minute, "how long to wait for the first backup")
	return cmd
}

// waitFirstBackup polls until the first recovery point exists or the
// workflow has refused the item (a missing source ends it at once).
func (a *app) waitFirstBackup(ctx context.Context, cl client.Client, run client.WorkflowRun, wait time.Duration) (item.Status, error) {
	deadline := time.Now().Add(wait)
	for {
		// Query first: a closed workflow answers queries too, and an item
		// refused at its first backup has an audit entry saying so.
		st, qerr := a.query(ctx, cl)
		desc, err := cl.DescribeWorkflowExecution(ctx, run.GetID(), run.GetRunID())
		if err != nil {
			return item.Status{}, err
		}
		if desc.GetWorkflowExecutionInfo().GetStatus() != enumspb.WORKFLOW_EXECUTION_STATUS_RUNNING {
			err := run.Get(ctx, nil)
			return item.Status{}, fmt.Errorf("item %s was not protected: %s", a.itemID, reason(err))
		}
		if qerr == nil && (st.LastBackupTime != "" || len(st.Audit) > 0) {
			return st, nil
		}
		if time.Now().After(deadline) {
			return item.Status{}, fmt.Errorf("item %s: no first backup after %s; is a worker running on task queue %q? `starter status` shows progress",
				a.itemID, wait, protocol.TaskQueue)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func (a *app) query(ctx context.Context, cl client.Client) (item.Status, error) {
	st, err := items.Status(ctx, cl, a.vaultID, a.itemID)
	var none *items.NoItemError
	if errors.As(err, &none) {
		return st, err
	}
	if err != nil {
		return st, a.explain(err)
	}
	return st, nil
}

func (a *app) status(ctx context.Context, cl client.Client) error {
	st, err := a.query(ctx, cl)
	if err != nil {
		return err
	}
	// One read of the vault's memo: the window and the hold.
	if vs, err := items.VaultSettings(ctx, cl, st.VaultID); err == nil {
		st, _ = items.VaultWindow(st, vs.SoftDeleteSettings)
		a.guardHolds = guardHolds(st, vs)
	}
	return a.print(st)
}

// guardHolds says whether a delete waiting at the item is held by its
// vault's mass-delete guard, as the vault publishes its hold.
func guardHolds(st item.Status, vs protocol.DeleteSettings) bool {
	return st.PendingDelete != nil && st.PendingDelete.Held && !vs.MassDeleteHold.HeldSince.IsZero()
}

// update sends an item update and prints its answer, the new status.
func (a *app) update(ctx context.Context, cl client.Client, name string, arg any) error {
	var st item.Status
	if err := a.send(ctx, cl, a.workflowID(), name, arg, &st); err != nil {
		return err
	}
	if st.PendingDelete != nil && st.PendingDelete.Held {
		vs, err := items.VaultSettings(ctx, cl, st.VaultID)
		a.guardHolds = err == nil && guardHolds(st, vs)
	}
	return a.print(st)
}

// send runs an update on a workflow and decodes its answer into result.
func (a *app) send(ctx context.Context, cl client.Client, workflowID, name string, arg, result any) error {
	err := items.Execute(ctx, cl, client.UpdateWorkflowOptions{WorkflowID: workflowID, UpdateName: name, Args: []any{arg}}, result)
	var app *temporal.ApplicationError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &app) && app.Type() == protocol.ErrTypeRefused:
		return refusal(name, app)
	case errors.As(err, &app):
		return fmt.Errorf("%s failed: %s", name, app.Message())
	}
	return a.explain(err)
}

// flagOf is the starter's flag for a field the API names.
var flagOf = map[string]string{
	"requestedBy": "--requested-by", "retentionDays": "--retention-days", "reason": "--reason",
	"recoveryPointId": "--recovery-point", "targetPath": "--target", "state": "--state",
	"purgeReminder": "--purge-reminder", "threshold": "--threshold", "window": "--window",
	"approvalWindow": "--approval-window", "approvers": "--approvers", "allowedSigners": "--file",
}

// refusal says a workflow's refusal in the starter's words: a rule it
// knows by its code in a sentence of its own, naming the flag; another
// in the workflow's sentence, with the flag of the field at fault.
func refusal(op string, app *temporal.ApplicationError) error {
	if d := protocol.RefusalOf(app); d.Field != "" {
		flag := flagOf[d.Field]
		if d.Code == protocol.CodeNameNeeded && flag != "" {
			return fmt.Errorf("%s refused: say who you are with %s NAME (not anonymous, system or scheduler), so that someone else can approve; nothing was changed", op, flag)
		}
		// A sentence about a field opens with its name: the starter's
		// user reads the flag there instead.
		if msg, ok := strings.CutPrefix(app.Message(), d.Field); ok && flag != "" {
			return fmt.Errorf("%s refused: %s%s", op, flag, msg)
		}
		if flag != "" {
			return fmt.Errorf("%s refused (%s): %s", op, flag, app.Message())
		}
	}
	return fmt.Errorf("%s refused: %s", op, app.Message())
}

// explain turns the server's errors about a missing item into a sentence.
func (a *app) explain(err error) error {
	if items.Finished(err) {
		return fmt.Errorf("item %s of vault %s is not running (workflow %s): protect it first, or it was purged", a.itemID, a.vaultID, a.workflowID())
	}
	return fmt.Errorf("%s", reason(err))
}

// reason is the workflow's own sentence, without the SDK's wrapping.
func reason(err error) string {
	var app *temporal.ApplicationError
	if errors.As(err, &app) {
		return app.Message()
	}
	return err.Error()
}

func (a *app) restoreCommand(itemFlags func(*cobra.Command)) *cobra.Command {
	var req protocol.RestoreRequest
	cmd := &cobra.Command{
		Use:   "restore",
		Short: "Restore a recovery point into an empty or absent directory, every file verified",
		Args:  cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, cl client.Client) error {
			req.RequestedBy = a.requestedBy
			if req.RecoveryPointID == "" {
				return errors.New("--recovery-point is required: `starter status` lists them")
			}
			if req.TargetPath == "" {
				return errors.New("--target is required: an absolute path, absent or an empty directory, on the worker's machine")
			}
			return a.update(ctx, cl, protocol.UpdateRestore, req)
		}),
	}
	itemFlags(cmd)
	cmd.Flags().StringVar(&req.RecoveryPointID, "recovery-point", "", "recovery point ID (required)")
	cmd.Flags().StringVar(&req.TargetPath, "target", "", "absolute directory to restore into, absent or empty (required)")
	return cmd
}

// listed is one row of `list`, read from visibility alone.
type listed struct {
	VaultID            string `json:"vaultId"`
	ItemID             string `json:"itemId"`
	ProtectionState    string `json:"protectionState"`
	DeferredDeleteTime string `json:"deferredDeleteTimeInUTC"`
	Remaining          string `json:"deferredDeleteTimeRemaining"`
	WorkflowStatus     string `json:"workflowStatus"`
	// RunID tells apart an item purged and one protected again under its
	// name; PurgedAt is when a purged one was.
	RunID    string `json:"runId"`
	PurgedAt string `json:"purgedAt,omitempty"`
	// DeleteWaiting is a delete waiting for the vault.
	DeleteWaiting bool `json:"deleteWaiting,omitempty"`
	// Anomaly is a suspect point not yet cleared.
	Anomaly bool `json:"anomaly,omitempty"`
}

func (a *app) listCommand() *cobra.Command {
	var state, page string
	pageSize := 1000
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List items through visibility, by vault and state, a page at a time",
		Long: "Lists items through visibility, --page-size at a time: when more follow, it\n" +
			"says the command that lists the next page (--page TOKEN).",
		Args: cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, cl client.Client) error {
			q, err := listQuery(a.vaultID, state)
			if err != nil {
				return err
			}
			if pageSize < 1 || pageSize > maxPageSize {
				return fmt.Errorf("--page-size %d: list 1 to %d items a page", pageSize, maxPageSize)
			}
			token, err := base64.RawURLEncoding.DecodeString(page)
			if err != nil {
				return fmt.Errorf("--page %q is not a page token that list printed: list from the first page, without --page", page)
			}
			rows, next, err := listItems(ctx, cl, q, pageSize, token)
			var invalid *serviceerror.InvalidArgument
			if errors.As(err, &invalid) && len(token) > 0 {
				return fmt.Errorf("--page is not a page of this listing (%s): list from the first page, without --page", invalid.Message)
			}
			if err != nil {
				return err
			}
			if len(rows) == 0 && len(token) == 0 && a.vaultID != "" {
				// No items may mean a mistyped vault: say which.
				var missing *serviceerror.NotFound
				if _, err := cl.DescribeWorkflowExecution(ctx, protocol.VaultWorkflowID(a.vaultID), ""); errors.As(err, &missing) {
					return fmt.Errorf("vault %s does not exist: a vault exists once an item of it is protected; list without --vault shows every item", a.vaultID)
				}
			}
			if a.jsonOut {
				err = a.printJSON(rows)
			} else {
				printList(a.out, rows)
			}
			if len(next) > 0 {
				// JSON stays one array: the next page is said on stderr.
				var more io.Writer = os.Stderr
				if !a.jsonOut {
					more = a.out
				}
				fmt.Fprintf(more, "More items follow: go run ./starter list%s --page-size %d --page %s\n",
					listFlags(a.vaultID, state), pageSize, base64.RawURLEncoding.EncodeToString(next))
			}
			return err
		}),
	}
	cmd.Flags().StringVar(&a.vaultID, "vault", "", "only this vault")
	cmd.Flags().StringVar(&state, "state", "", "only this state: Protected, ProtectionStopped, SoftDeleted or Purged; or Waiting (a delete waits) or Anomaly (suspect points)")
	cmd.Flags().IntVar(&pageSize, "page-size", pageSize, fmt.Sprintf("items a page, 1 to %d", maxPageSize))
	cmd.Flags().StringVar(&page, "page", "", "the page to list, as the previous page said")
	return cmd
}

// maxPageSize bounds a page of list: the visibility store's own limit.
const maxPageSize = 10000

// listFlags repeats list's filters, for the command of the next page.
func listFlags(vaultID, state string) string {
	var f string
	if vaultID != "" {
		f += " --vault " + vaultID
	}
	if state != "" {
		f += " --state " + state
	}
	return f
}

func listQuery(vaultID, state string) (string, error) {
	if vaultID != "" {
		if err := protocol.ValidateID("--vault", vaultID); err != nil {
			return "", err
		}
	}
	if s := protocol.State(state); s != "" && !slices.Contains(items.Keys, s) {
		return "", fmt.Errorf("--state %q is not a state: use one of %s", state, stateList())
	}
	return items.Query(vaultID, protocol.State(state)), nil
}

func stateList() string {
	var names []string
	for _, s := range items.Keys {
		names = append(names, string(s))
	}
	return strings.Join(names, ", ")
}

// listItems reads one page of a listing and the token of the next one,
// empty on the last.
func listItems(ctx context.Context, cl client.Client, query string, pageSize int, token []byte) ([]listed, []byte, error) {
	items, next, err := items.ListPage(ctx, cl, query, int32(pageSize), token)
	if err != nil {
		return nil, nil, err
	}
	rows := make([]listed, 0, len(items))
	for _, it := range items {
		r := listed{
			VaultID:         it.VaultID,
			ItemID:          strings.TrimPrefix(it.WorkflowID, protocol.WorkflowID(it.VaultID, "")),
			ProtectionState: it.ProtectionState,
			WorkflowStatus:  it.WorkflowStatus,
			RunID:           it.RunID,
			DeleteWaiting:   it.DeleteWaiting,
			Anomaly:         it.Anomaly,
		}
		if it.ProtectionState == string(protocol.Purged) && !it.ClosedAt.IsZero() {
			r.PurgedAt = it.ClosedAt.UTC().Format(time.RFC3339)
		}
		if !it.DeferredDeleteTime.IsZero() {
			r.DeferredDeleteTime = it.DeferredDeleteTime.UTC().Format(time.RFC3339)
			r.Remaining = protocol.FormatRemaining(time.Until(it.DeferredDeleteTime))
		}
		rows = append(rows, r)
	}
	return rows, next, nil
}

func (a *app) print(st item.Status) error {
	if a.jsonOut {
		return a.printJSON(st)
	}
	printStatus(a.out, st, a.guardHolds)
	return nil
}

func (a *app) printJSON(v any) error {
	enc := json.NewEncoder(a.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// vaultCommand groups the vault's operations.
func (a *app) vaultCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "vault", Short: "Show and change a vault: soft-delete settings, multi-user authorization, deletion"}
	var req protocol.SetSoftDeleteRequest
	var why string
	var setCmd, delCmd *cobra.Command
	// sendVault sends a vault update, signed when the vault requires it.
	sendVault := func(ctx context.Context, cmd *cobra.Command, cl client.Client, name string, arg any) error {
		if alwaysCritical[name] {
			if err := a.named("vault " + cmd.Name()); err != nil {
				return err
			}
		}
		arg, err := a.signed(ctx, cmd, cl, a.vaultID, name, protocol.VaultWorkflowID(a.vaultID), arg)
		if err != nil {
			return err
		}
		var st vault.VaultStatus
		if err := a.send(ctx, cl, protocol.VaultWorkflowID(a.vaultID), name, arg, &st); err != nil {
			return err
		}
		if a.jsonOut {
			return a.printJSON(st)
		}
		printVaultStatus(a.out, st, a.countItems(ctx, cl))
		return nil
	}
	withVault := func(cmd *cobra.Command, f func(context.Context, client.Client) error) *cobra.Command {
		cmd.Args = cobra.NoArgs
		cmd.Flags().StringVar(&a.vaultID, "vault", "", "vault ID (required)")
		cmd.RunE = a.run(func(ctx context.Context, cl client.Client) error {
			if err := protocol.ValidateID("--vault", a.vaultID); err != nil {
				return err
			}
			return f(ctx, cl)
		})
		return cmd
	}
	printVault := func(ctx context.Context, cl client.Client, st vault.VaultStatus) error {
		if a.jsonOut {
			return a.printJSON(st)
		}
		printVaultStatus(a.out, st, a.countItems(ctx, cl))
		return nil
	}
	status := withVault(&cobra.Command{Use: "status", Short: "Show a vault's settings and its items by state"},
		func(ctx context.Context, cl client.Client) error {
			v, err := cl.QueryWorkflow(ctx, protocol.VaultWorkflowID(a.vaultID), "", protocol.QueryVaultStatus)
			if err != nil {
				return fmt.Errorf("vault %s does not answer (%s): a vault exists once an item of it is protected", a.vaultID, reason(err))
			}
			var st vault.VaultStatus
			if err := v.Get(&st); err != nil {
				return err
			}
			return printVault(ctx, cl, st)
		})
	set := withVault(&cobra.Command{Use: "set-soft-delete", Short: "Change soft delete: Enabled, Disabled or AlwaysOn (irreversible), retention 14 to 180 days"},
		func(ctx context.Context, cl client.Client) error {
			req.RequestedBy, req.Reason = a.requestedBy, why
			// Said in flags: the vault would say retentionDays.
			if d := req.RetentionDays; d != 0 && (d < protocol.MinSoftDeleteRetentionDays || d > protocol.MaxSoftDeleteRetentionDays) {
				return fmt.Errorf("--retention-days %d: soft-deleted data is kept %d to %d days; nothing was sent", d, protocol.MinSoftDeleteRetentionDays, protocol.MaxSoftDeleteRetentionDays)
			}
			if req.State == protocol.SoftDeleteAlwaysOn {
				if err := a.confirm(setCmd, fmt.Sprintf("AlwaysOn keeps soft delete on for vault %s for good: it can never again be set to Enabled or Disabled. This", a.vaultID)); err != nil {
					return err
				}
			}
			return sendVault(ctx, setCmd, cl, protocol.UpdateSetSoftDelete, req)
		})
	setCmd = set
	yesFlag(set, &a.yes)
	set.Flags().StringVar((*string)(&req.State), "state", "", "Enabled, Disabled or AlwaysOn (irreversible: asks first, or --yes)")
	set.Flags().IntVar(&req.RetentionDays, "retention-days", 0, "days soft-deleted data is kept (14 to 180)")
	set.Flags().StringVar(&req.PurgeReminder, "purge-reminder", "", "how long before a purge the reminder alert goes out, e.g. 48h")
	del := withVault(&cobra.Command{Use: "delete", Short: "Delete a vault; refused while any of its items still holds data"},
		func(ctx context.Context, cl client.Client) error {
			// Asked only when it would go through: a vault whose items
			// hold data is refused, as the vault itself would refuse it.
			held, err := items.List(ctx, cl, protocol.ItemsQuery(a.vaultID, ""))
			if err == nil {
				err = vault.DeleteVaultRefusal(a.vaultID, held)
			}
			if err != nil {
				return err
			}
			if err := a.confirm(delCmd, fmt.Sprintf("Deleting vault %s", a.vaultID)); err != nil {
				return err
			}
			return sendVault(ctx, delCmd, cl, protocol.UpdateDeleteVault, protocol.Request{RequestedBy: a.requestedBy, Reason: why})
		})
	delCmd = del
	yesFlag(del, &a.yes)
	var mua protocol.EnableMuaRequest
	var off bool
	var enable *cobra.Command
	enable = withVault(&cobra.Command{
		Use:   "enable-mua",
		Short: "Require approval by a second person for critical operations (--off asks to turn it off)",
		Long: "Multi-user authorization: while on, deleting backup data, disabling soft delete,\n" +
			"shortening retention, deleting the vault and turning it off wait for approval by\n" +
			"an approver other than the requester, and expire unapproved after the window.",
	}, func(ctx context.Context, cl client.Client) error {
		mua.RequestedBy, mua.Reason = a.requestedBy, why
		if off {
			mua.Enabled = new(bool)
		}
		return sendVault(ctx, enable, cl, protocol.UpdateEnableMua, mua)
	})
	enable.Flags().StringSliceVar(&mua.Approvers, "approvers", nil, "who may approve, comma-separated (alice,bob)")
	enable.Flags().StringVar(&mua.ApprovalWindow, "approval-window", "", "how long a request waits before it expires (default 24h)")
	enable.Flags().BoolVar(&off, "off", false, "ask to turn multi-user authorization off (needs approval)")
	var decision protocol.DecisionRequest
	decide := func(use, update, short string) *cobra.Command {
		var cmd *cobra.Command
		cmd = withVault(&cobra.Command{Use: use, Short: short}, func(ctx context.Context, cl client.Client) error {
			decision.RequestedBy, decision.Reason = a.requestedBy, why
			return sendVault(ctx, cmd, cl, update, decision)
		})
		cmd.Flags().StringVar(&decision.RequestID, "request", "", "the request's ID, as vault status lists it (required)")
		_ = cmd.MarkFlagRequired("request")
		return cmd
	}
	approve := decide("approve", protocol.UpdateApprove, "Approve a pending request: it is carried out at once (not by its requester)")
	reject := decide("reject", protocol.UpdateReject, "Reject a pending request (an approver, or its requester to withdraw it)")
	var signersFile string
	var removeSigners bool
	var signers *cobra.Command
	signers = withVault(&cobra.Command{
		Use:   "set-allowed-signers",
		Short: "Require signed critical operations: the operators' SSH public keys, in OpenSSH's allowed_signers format",
		Long: "Set, replace (--file) or remove (--remove) the vault's allowed signers: one line per key,\n" +
			"\"alice@example.com ssh-ed25519 AAAA...\", as git and ssh-keygen -Y verify read them. While\n" +
			"a vault holds them, every critical operation and every approval must be signed by a key\n" +
			"listed for its --requested-by; the starter signs with --key or the key in ssh-agent.\n" +
			"The first set follows the vault's rules for critical operations; replacing or removing\n" +
			"them is critical, and signed.",
	}, func(ctx context.Context, cl client.Client) error {
		req := protocol.SetAllowedSignersRequest{RequestedBy: a.requestedBy, Reason: why}
		switch {
		case removeSigners == (signersFile != ""):
			return errors.New("give --file FILE (an allowed_signers file) or --remove")
		case signersFile != "":
			text, err := os.ReadFile(signersFile)
			if err != nil {
				return fmt.Errorf("read the allowed signers: %w", err)
			}
			if _, err := signing.ParseKeys(string(text)); err != nil {
				return fmt.Errorf("%s: %w; nothing was sent", signersFile, err)
			}
			req.AllowedSigners = string(text)
		}
		return sendVault(ctx, signers, cl, vault.UpdateSetAllowedSigners, req)
	})
	signers.Flags().StringVar(&signersFile, "file", "", "the allowed_signers file")
	signers.Flags().BoolVar(&removeSigners, "remove", false, "remove the allowed signers: critical operations are no longer signed")
	var guard protocol.SetMassDeleteGuardRequest
	var guardOff, guardOn bool
	var guardCmd, clearCmd *cobra.Command
	guardCmd = withVault(&cobra.Command{
		Use:   "set-mass-delete-guard",
		Short: "Change the mass-delete guard: how many deletes a window lets through before the vault holds the rest",
		Long: "The mass-delete guard is on by default: more deletes than its threshold (the larger of 10\n" +
			"and 5% of the vault's items) within its window (10 minutes) raise a massDelete alert, and\n" +
			"every further delete of the vault waits until the hold is cleared (clear-mass-delete-hold).\n" +
			"Turning it off or loosening it is critical: under multi-user authorization it waits for\n" +
			"approval, and on a vault that requires signatures it is signed.",
	}, func(ctx context.Context, cl client.Client) error {
		guard.RequestedBy, guard.Reason = a.requestedBy, why
		switch {
		case guardOff && guardOn:
			return errors.New("give --on or --off, not both")
		case guardOff:
			guard.Enabled = new(bool)
		case guardOn:
			on := true
			guard.Enabled = &on
		}
		return sendVault(ctx, guardCmd, cl, vault.UpdateSetMassDeleteGuard, guard)
	})
	guardCmd.Flags().BoolVar(&guardOff, "off", false, "turn the guard off (critical)")
	guardCmd.Flags().BoolVar(&guardOn, "on", false, "turn the guard on")
	guardCmd.Flags().IntVar(&guard.Threshold, "threshold", 0, "deletes a window lets through (default: the larger of 10 and 5% of the items)")
	guardCmd.Flags().StringVar(&guard.Window, "window", "", "the window, e.g. 10m")
	clearCmd = withVault(&cobra.Command{
		Use:   "clear-mass-delete-hold",
		Short: "Let the deletes the mass-delete guard holds through (critical)",
	}, func(ctx context.Context, cl client.Client) error {
		return sendVault(ctx, clearCmd, cl, vault.UpdateClearMassDeleteHold, protocol.Request{RequestedBy: a.requestedBy, Reason: why})
	})
	for _, cmd := range []*cobra.Command{set, del, enable, approve, reject, signers, guardCmd, clearCmd} {
		cmd.Flags().StringVar(&a.requestedBy, "requested-by", operatorName(), "who asks, for the audit trail (default: $USER, or the operating system's user)")
		cmd.Flags().StringVar(&why, "reason", "", "why, for the audit trail")
	}
	cmd.AddCommand(status, set, del, enable, approve, reject, signers, guardCmd, clearCmd)
	return cmd
}

// countItems counts the vault's items by state for a person to read, or
// nil (said where they would be) when visibility does not answer.
func (a *app) countItems(ctx context.Context, cl client.Client) map[protocol.State]int {
	counts, err := items.Count(ctx, cl, a.vaultID)
	if err != nil {
		return nil
	}
	return counts
}

func (a *app) verifyCommand(itemFlags func(*cobra.Command)) *cobra.Command {
	var req protocol.VerifyRequest
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Read a recovery point back from the store and check every file (a restore drill); exits non-zero when it does not verify",
		Args:  cobra.NoArgs,
		RunE: a.run(func(ctx context.Context, cl client.Client) error {
			req.RequestedBy = a.requestedBy
			done := make(chan struct{})
			defer close(done)
			go showDrillProgress(ctx, cl, a.workflowID(), os.Stderr, done)
			return a.update(ctx, cl, protocol.UpdateVerify, req)
		}),
	}
	itemFlags(cmd)
	cmd.Flags().StringVar(&req.RecoveryPointID, "recovery-point", "", "recovery point ID (default: the newest never verified, else the oldest, else the one verified longest ago)")
	return cmd
}

// showDrillProgress says, every few seconds while a drill runs, how much
// of the point it has read back: what its activity reports.
func showDrillProgress(ctx context.Context, cl client.Client, workflowID string, out io.Writer, done <-chan struct{}) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		d, err := cl.DescribeWorkflowExecution(ctx, workflowID, "")
		if err != nil {
			continue
		}
		for _, p := range d.GetPendingActivities() {
			var read int64
			if p.GetActivityType().GetName() != protocol.ActivityVerify || converter.GetDefaultDataConverter().FromPayloads(p.GetHeartbeatDetails(), &read) != nil {
				continue
			}
			fmt.Fprintf(out, "verifying: %s read back so far\n", protocol.Plural(int(read), "byte"))
		}
	}
}
