"""How a Go run's code becomes a main package (no agent needed; the live builds are in test_go_runtime)."""

from __future__ import annotations

import re

import pytest

from sandboxes.engine.go_source import GoSourceError, main_package, package_name


def _main_body(source: str) -> str:
    return source.split("func main() {\n", 1)[1]


def test_a_whole_program_is_kept_as_written():
    code = 'package main\n\nimport "fmt"\n\nfunc main() { fmt.Println(1) }\n'
    assert main_package(code) == "//line main.go:1:1\n" + code


def test_a_package_other_than_main_is_refused():
    with pytest.raises(GoSourceError, match="package lib"):
        main_package("// a library\npackage lib\n")
    assert package_name("/* package x */ x := 1") is None


def test_declarations_stay_at_package_level_and_statements_go_into_main():
    code = (
        'import "os"\n'
        "type P struct{ X int }\n"
        "func (p P) Twice() int { return 2 * p.X }\n"
        "func id[T any](v T) T {\n\treturn v\n}\n"
        "n := id(P{2}).Twice()\n"
        "func() { n++ }()\n"
        "os.Exit(n)\n"
    )
    source = main_package(code)
    head, body = source.split("func main() {\n", 1)
    assert 'import "os"' in head and "type P struct" in head and "func (p P) Twice" in head
    assert "func id[T any](v T) T {\n\treturn v\n}" in head
    assert "n := id(P{2}).Twice()\nfunc() { n++ }()\nos.Exit(n)" in body


def test_line_directives_keep_the_users_line_numbers():
    code = "x := 1\n\ntype T int\n\nfmt.Println(x)\n"
    source = main_package(code)
    directives = re.findall(r"//line main.go:(\d+):1\n(.*)", source)
    assert ("3", "type T int") in directives and ("1", "x := 1") in directives
    assert ("5", "fmt.Println(x)") in directives


def test_packages_used_only_as_selectors_are_imported():
    source = main_package('fmt.Println(strings.Repeat("a", 2), json.Valid(nil))')
    assert 'import (\n\t"encoding/json"\n\t"fmt"\n\t"strings"\n)' in source


def test_a_name_the_snippet_declares_or_imports_is_never_imported_for_it():
    # a variable, a parameter, a field, a label, text in strings and comments, an explicit import
    for code in (
        "fmt := 3\nfmt.Println(1)",
        "f := func(strings []string) int { return len(strings) }\n_ = f",
        "type S struct{ os int }\nvar s S\n_ = s.os",
        'x := "fmt.Println"\n// strings.ToUpper\n_ = x',
        'import str "strings"\nstr.ToUpper("a")',
        'import "strings"\nstrings.ToUpper("a")',
    ):
        source = main_package(code)
        assert "import (" not in source, (code, source)


def test_comments_and_strings_do_not_look_like_declarations():
    code = "s := `\nfunc fake() {}\n`\n/*\ntype X int\n*/\nprintln(s)"
    body = _main_body(main_package(code))
    assert "func fake() {}" in body and "type X int" in body
