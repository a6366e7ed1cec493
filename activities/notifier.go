package activities

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"recoveryvault/workflows/protocol"
)

// Notifier delivers alerts. An error is retried by the activity's policy.
type Notifier interface {
	Notify(ctx context.Context, a protocol.Alert) error
}

// LogNotifier writes each alert as one structured log line.
type LogNotifier struct{ Logger *slog.Logger }

// Notify logs the alert.
func (n LogNotifier) Notify(_ context.Context, a protocol.Alert) error {
	logger := n.Logger
	if logger == nil {
		logger = slog.Default()
	}
	// "at", not "time": the log line has a time of its own.
	attrs := []any{"kind", a.Kind, "vaultId", a.VaultID, "itemId", a.ItemID, "requestedBy", a.RequestedBy, "at", a.Time}
	if !a.PurgeTime.IsZero() {
		attrs = append(attrs, "purgeTime", a.PurgeTime)
	}
	if a.Signer != "" {
		attrs = append(attrs, "signer", a.Signer)
	}
	if a.Detail != "" {
		attrs = append(attrs, "detail", a.Detail)
	}
	if a.More > 0 {
		attrs = append(attrs, "more", a.More)
	}
	logger.Warn("Recovery Vault alert", attrs...)
	return nil
}

// WebhookNotifier POSTs each alert as JSON to URL. A failed delivery is an
// error, so the Notify activity retries it.
type WebhookNotifier struct {
	URL    string
	Client *http.Client
}

// Notify posts the alert.
func (n WebhookNotifier) Notify(ctx context.Context, a protocol.Alert) error {
	body, err := json.Marshal(a)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.URL, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook %s: %w", n.URL, err)
	}
	req.Header.Set("Content-Type", "application/json")
	client := n.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook %s: %w", n.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook %s answered %s", n.URL, resp.Status)
	}
	return nil
}
