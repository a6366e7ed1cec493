package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"
)

// confirm asks before a change that cannot be undone, as az and aws do:
// --yes answers for scripts; without it a person types "yes". With no
// terminal to ask on (a script, CI), the change is refused until --yes says
// so: nothing has been sent by then.
func (a *app) confirm(cmd *cobra.Command, what string) error {
	if a.yes {
		return nil
	}
	in := cmd.InOrStdin()
	if f, ok := in.(*os.File); ok && !term.IsTerminal(int(f.Fd())) {
		return fmt.Errorf("%s cannot be undone, and there is no terminal to confirm it on: run the command again with --yes. Nothing was changed", what)
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s cannot be undone.\nType yes to go on: ", what)
	answer, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && err != io.EOF {
		return fmt.Errorf("read the answer: %w", err)
	}
	if !strings.EqualFold(strings.TrimSpace(answer), "yes") {
		return fmt.Errorf("not confirmed (the answer was %q, not yes): nothing was changed", strings.TrimSpace(answer))
	}
	return nil
}
