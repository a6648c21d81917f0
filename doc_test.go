package herald_test

import (
	"go/ast"
	"go/doc"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Every package of the module has a package doc and every exported name a
// doc comment: the docs are part of the API.
func TestEverythingExportedIsDocumented(t *testing.T) {
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return err
		}
		name := d.Name()
		if path != "." && (strings.HasPrefix(name, ".") || name == "testdata" || name == "node_modules" ||
			name == "bench") {
			return filepath.SkipDir
		}
		checkPackageDocs(t, path)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func checkPackageDocs(t *testing.T, dir string) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, dir, func(fi os.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, parser.ParseComments)
	if err != nil {
		t.Errorf("%s: %v", dir, err)
		return
	}
	for _, pkg := range pkgs {
		files := make([]*ast.File, 0, len(pkg.Files))
		for _, f := range pkg.Files {
			files = append(files, f)
		}
		p, err := doc.NewFromFiles(fset, files, "example.com/"+dir)
		if err != nil {
			t.Errorf("%s: %v", dir, err)
			continue
		}
		if strings.TrimSpace(p.Doc) == "" {
			t.Errorf("package %s (%s) has no package doc", p.Name, dir)
		}
		if p.Name == "main" {
			continue
		}
		check := func(kind, name, text string) {
			if strings.TrimSpace(text) == "" {
				t.Errorf("%s: %s %s has no doc comment", dir, kind, name)
			}
		}
		for _, f := range p.Funcs {
			check("func", f.Name, f.Doc)
		}
		for _, v := range append(p.Consts, p.Vars...) {
			if strings.TrimSpace(v.Doc) == "" {
				for _, spec := range v.Decl.Specs {
					vs := spec.(*ast.ValueSpec)
					for _, n := range vs.Names {
						if n.IsExported() && vs.Doc == nil && vs.Comment == nil {
							t.Errorf("%s: %s has no doc comment", dir, n.Name)
						}
					}
				}
			}
		}
		for _, typ := range p.Types {
			check("type", typ.Name, typ.Doc)
			for _, f := range typ.Funcs {
				check("func", f.Name, f.Doc)
			}
			for _, m := range typ.Methods {
				check("method", typ.Name+"."+m.Name, m.Doc)
			}
		}
	}
}
