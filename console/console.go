// Package console is Recovery Vault's web console: the vault's Backup Items
// view in a browser, served by the worker. It keeps no state of its own:
// every page is read from Temporal (visibility and the status queries) and
// every action is one of the workflows' updates, sent through the client.
package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"go.temporal.io/sdk/client"
)

//go:embed templates static
var files embed.FS

// Options configure a console.
type Options struct {
	Client client.Client
	// IdentityHeader names the header an authenticating proxy sets to the
	// operator's identity (X-Forwarded-Email). Empty is dev mode only: the
	// operator types a name once and a cookie keeps it.
	IdentityHeader string
	// RefreshInterval is how often an open page refreshes itself.
	RefreshInterval time.Duration
	// PageSize is how many items a page of a vault lists (default 50).
	PageSize int
	Logger   *slog.Logger
}

// Console serves the pages.
type Console struct {
	opts  Options
	pages map[string]*template.Template
	mux   *http.ServeMux
}

// New returns the console's handler.
func New(o Options) (*Console, error) {
	if o.Client == nil {
		return nil, errors.New("console: no Temporal client")
	}
	if o.RefreshInterval <= 0 {
		o.RefreshInterval = 3 * time.Second
	}
	if o.PageSize <= 0 || o.PageSize > 1000 {
		o.PageSize = defaultPageSize
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	c := &Console{opts: o, pages: map[string]*template.Template{}}
	for _, name := range []string{"vaults", "vault", "item", "operator", "problem"} {
		t, err := template.New(name).Funcs(templateFuncs).ParseFS(files, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("console: parse template %s: %w", name, err)
		}
		c.pages[name] = t
	}
	static, err := fs.Sub(files, "static")
	if err != nil {
		return nil, err
	}

	mux := http.NewServeMux()
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	mux.HandleFunc("GET /{$}", c.page(c.vaults))
	mux.HandleFunc("GET /vaults/{vaultId}", c.page(c.vault))
	mux.HandleFunc("GET /vaults/{vaultId}/items/{itemId}", c.page(c.item))
	mux.HandleFunc("POST /vaults/{vaultId}/items/{itemId}/{update}", c.page(c.itemAction))
	mux.HandleFunc("POST /vaults/{vaultId}/{update}", c.page(c.vaultAction))
	mux.HandleFunc("GET /operator", c.operatorForm)
	mux.HandleFunc("POST /operator", c.setOperator)
	mux.HandleFunc("/", c.page(func(*http.Request, *view) error {
		return problem(http.StatusNotFound, "There is no page at this address. The console has vaults at /, a vault's items at /vaults/{vaultId}, and an item at /vaults/{vaultId}/items/{itemId}.")
	}))
	c.mux = mux
	return c, nil
}

// ServeHTTP refuses cross-origin writes and requests without an operator
// before anything else sees them.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Frame-Options", "DENY")
	w.Header().Set("Referrer-Policy", "same-origin")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'")
	if c.opts.IdentityHeader == "" && !Loopback(r.Host) {
		// Dev mode knows operators by a name anyone may type, so it serves
		// only the loopback names: a page whose own name was re-pointed at
		// 127.0.0.1 (DNS rebinding) would otherwise be same-origin here.
		c.renderProblem(w, r, problem(http.StatusMisdirectedRequest,
			"Dev mode's console answers only at 127.0.0.1 or localhost, not at %q. Outside dev mode, put it behind an authenticating proxy (--identity-header).", r.Host))
		return
	}
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	}
	if err := crossOrigin.Check(r); err != nil {
		c.renderProblem(w, r, problem(http.StatusForbidden,
			"This request came from another site, so the console refused it: use the console's own pages."))
		return
	}
	c.mux.ServeHTTP(w, r)
}

// maxFormBytes bounds a form: a name, a reason, a path.
const maxFormBytes = 64 << 10

// crossOrigin rejects non-safe requests that browsers mark as cross-origin;
// the CSRF token (identity.go) covers clients that send no such headers.
var crossOrigin = http.NewCrossOriginProtection()

// Serve listens on addr (say 127.0.0.1:8234) and serves in the
// background. It returns once listening, with the address it listens on and
// a function that stops it, so a port that is taken is an error at start.
func Serve(addr string, h http.Handler, logger *slog.Logger) (string, func(), error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("console: listen on %s: %w; choose another with --console-port or --console-addr", addr, err)
	}
	// Requests end with the console: a page still waiting on Temporal
	// when the worker stops is cancelled, not left holding a closed client.
	base, cancel := context.WithCancel(context.Background())
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, BaseContext: func(net.Listener) context.Context { return base }}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Error("console stopped", "error", err)
		}
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ctx, cancelWait := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancelWait()
			if srv.Shutdown(ctx) != nil {
				cancel()
				_ = srv.Close()
			}
			cancel()
			<-done
		})
	}
	return l.Addr().String(), stop, nil
}
