package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.temporal.io/sdk/client"
	"golang.org/x/crypto/ssh"
	"golang.org/x/term"

	"recoveryvault/internal/signing"
	"recoveryvault/workflows/protocol"
	"recoveryvault/workflows/vault"
)

// signed returns arg, the payload of operation op sent to workflowID, signed
// by the operator when vault vaultID requires signatures, and arg as it is
// otherwise. The key is --key's, or the one in ssh-agent that the vault
// lists for --requested-by.
func (a *app) signed(ctx context.Context, cmd *cobra.Command, cl client.Client, vaultID, op, workflowID string, arg any) (any, error) {
	st := vault.VaultStatus{VaultID: vaultID}
	v, err := cl.QueryWorkflow(ctx, protocol.VaultWorkflowID(vaultID), "", protocol.QueryVaultStatus)
	if err == nil {
		err = v.Get(&st)
	}
	switch {
	case err == nil && !st.SignaturesRequired:
		return arg, nil
	case err != nil && a.keyFile == "":
		// The vault did not answer: the workflow that receives the request
		// decides, and says so if it needed a signature.
		return arg, nil
	case err != nil:
		// --key says the operator means to sign: sign, without knowing
		// which keys the vault lists.
		st.AllowedSigners = nil
	}
	signer, done, err := a.signer(cmd, st)
	if err != nil {
		return nil, err
	}
	defer done()
	return signing.Sign(signer, op, workflowID, arg, time.Now())
}

// signer is the operator's key for vault st: --key, or ssh-agent's.
func (a *app) signer(cmd *cobra.Command, st vault.VaultStatus) (ssh.Signer, func(), error) {
	if a.keyFile != "" {
		key, err := signing.LoadKey(a.keyFile, a.passphrase(cmd))
		if err != nil || st.AllowedSigners == nil {
			return key, func() {}, err
		}
		s, err := signing.Choose([]ssh.Signer{key}, st.AllowedSigners, a.requestedBy, st.VaultID)
		return s, func() {}, err
	}
	keys, done, err := signing.Agent()
	if err != nil {
		return nil, nil, fmt.Errorf("vault %s requires signed operations: give your key with --key FILE, or load it into ssh-agent (%v)", st.VaultID, err)
	}
	s, err := signing.Choose(keys, st.AllowedSigners, a.requestedBy, st.VaultID)
	if err != nil {
		done()
		return nil, nil, err
	}
	return s, done, nil
}

// passphrase asks for a key's passphrase on the terminal, or reads a line
// of the command's input when it is not a terminal but a person's typing
// (tests); with neither, a passphrase-protected key must be in ssh-agent.
func (a *app) passphrase(cmd *cobra.Command) signing.PassphraseFunc {
	in := cmd.InOrStdin()
	f, isFile := in.(*os.File)
	if isFile && !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return func(path string) ([]byte, error) {
		fmt.Fprintf(cmd.ErrOrStderr(), "Passphrase for %s: ", path)
		if isFile {
			pass, err := term.ReadPassword(int(f.Fd()))
			fmt.Fprintln(cmd.ErrOrStderr())
			return pass, err
		}
		line, err := bufio.NewReader(in).ReadString('\n')
		if err != nil && line == "" {
			return nil, fmt.Errorf("read the passphrase of %s: %w", path, err)
		}
		return []byte(strings.TrimRight(line, "\r\n")), nil
	}
}
