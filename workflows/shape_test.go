package workflows_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"recoveryvault/workflows/item"
	"recoveryvault/workflows/protocol"
)

// The shape a newcomer relies on (docs/design.md): these limits fail the
// change that would quietly break them.
const (
	maxFileLines      = 500
	maxCommentLines   = 2
	maxRunTimeFields  = 10
	maxCarriedFields  = 35
	workflowsPackages = "item protocol vault"
)

// carriedFields counts a carried type's fields as docs/design.md does:
// nested records field by field, recovery points and audit entries once.
func carriedFields(t reflect.Type) int {
	switch {
	case t == reflect.TypeFor[time.Time](), t == reflect.TypeFor[[]protocol.RecoveryPoint](), t == reflect.TypeFor[[]protocol.AuditEntry]():
		return 1
	case t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Pointer:
		return carriedFields(t.Elem())
	case t.Kind() == reflect.Map:
		return carriedFields(t.Key()) + carriedFields(t.Elem())
	case t.Kind() != reflect.Struct:
		return 1
	}
	n := 0
	for f := range t.Fields() {
		n += carriedFields(f.Type)
	}
	return n
}

func TestTheItemsCarriedStateDoesNotGrow(t *testing.T) {
	st := reflect.TypeFor[item.ItemState]()
	require.Equal(t, 2, carriedFields(reflect.TypeFor[struct{ A, B []protocol.RecoveryPoint }]()), "a list of recovery points counts once")
	require.Equal(t, 2*carriedFields(reflect.TypeFor[item.Waiting]())+1,
		carriedFields(reflect.TypeFor[struct {
			A map[string]item.Waiting
			B [2]*item.Waiting
		}]()), "other records count field by field, however held")
	require.LessOrEqual(t, carriedFields(st), maxCarriedFields,
		"every field the item carries across continue-as-new is one more thing a newcomer must follow: fold a new fact into an existing one (a recovery point's record counts once)")
}

// eachSource calls f with every non-test file of the workflows' packages.
func eachSource(t *testing.T, f func(path string, file *ast.File, fset *token.FileSet, lines int)) {
	for _, pkg := range strings.Fields(workflowsPackages) {
		paths, err := filepath.Glob(filepath.Join(pkg, "*.go"))
		require.NoError(t, err)
		require.NotEmpty(t, paths, "the workflows' package %s", pkg)
		for _, path := range paths {
			if strings.HasSuffix(path, "_test.go") {
				continue
			}
			src, err := os.ReadFile(path)
			require.NoError(t, err)
			fset := token.NewFileSet()
			file, err := parser.ParseFile(fset, path, src, parser.ParseComments)
			require.NoError(t, err)
			f(path, file, fset, strings.Count(string(src), "\n"))
		}
	}
}

func TestWorkflowFilesStayShortAndCommentsSayWhyBriefly(t *testing.T) {
	eachSource(t, func(path string, file *ast.File, fset *token.FileSet, lines int) {
		require.LessOrEqual(t, lines, maxFileLines, "%s: split it by what its parts decide", path)
		for _, c := range file.Comments {
			if c == file.Doc {
				continue // a package's doc may say more
			}
			n := 0
			for _, line := range c.List {
				if !strings.HasPrefix(line.Text, "//go:") {
					n++
				}
			}
			require.LessOrEqual(t, n, maxCommentLines, "%s:%d: a comment says why in a line or two", path, fset.Position(c.Pos()).Line)
		}
	})
}

func TestNeitherEntitysRunTimeStructHasMoreThanTenFields(t *testing.T) {
	found := map[string]int{}
	eachSource(t, func(path string, file *ast.File, _ *token.FileSet, _ int) {
		entity := filepath.Base(filepath.Dir(path))
		for _, decl := range file.Decls {
			gen, ok := decl.(*ast.GenDecl)
			if !ok {
				continue
			}
			for _, spec := range gen.Specs {
				ts, ok := spec.(*ast.TypeSpec)
				if !ok || ts.Name.Name != entity {
					continue
				}
				s, ok := ts.Type.(*ast.StructType)
				if !ok {
					continue
				}
				for _, f := range s.Fields.List {
					require.NotEmpty(t, f.Names, "%s: the %s struct embeds %s: name it, so that its fields count", path, entity, f.Type)
					found[entity] += len(f.Names)
				}
			}
		}
	})
	require.Len(t, found, 2, "the run-time structs item and vault")
	for name, n := range found {
		require.LessOrEqual(t, n, maxRunTimeFields, "the %s workflow's run-time struct", name)
	}
}
