// The console's CodeMirror 6 bundle: one ES module exporting createEditor(). Built by scripts/vendor_js.py.
import { EditorView, basicSetup } from "codemirror";
import { keymap } from "@codemirror/view";
import { Compartment, Prec } from "@codemirror/state";
import { indentWithTab } from "@codemirror/commands";
import { StreamLanguage } from "@codemirror/language";
import { python } from "@codemirror/lang-python";
import { javascript } from "@codemirror/lang-javascript";
import { go } from "@codemirror/legacy-modes/mode/go";
import { shell } from "@codemirror/legacy-modes/mode/shell";

const LANGUAGES = {
  python: () => python(),
  node: () => javascript(),
  javascript: () => javascript(),
  go: () => StreamLanguage.define(go),
  shell: () => StreamLanguage.define(shell),
  bash: () => StreamLanguage.define(shell),
};

function languageFor(runtime) {
  const make = LANGUAGES[runtime] || LANGUAGES[String(runtime).replace(/[0-9.]+$/, "")];
  return make ? make() : [];
}

// Ctrl/Cmd+Enter calls onRun; Tab indents (Escape then Tab leaves the editor, as CodeMirror documents).
export function createEditor(parent, { doc = "", runtime = "python", onRun = () => {}, onChange = () => {} } = {}) {
  const language = new Compartment();
  const view = new EditorView({
    doc,
    parent,
    extensions: [
      basicSetup,
      Prec.highest(keymap.of([{ key: "Mod-Enter", run: () => { onRun(); return true; } }])),
      keymap.of([indentWithTab]),
      language.of(languageFor(runtime)),
      EditorView.updateListener.of((u) => { if (u.docChanged) onChange(u.state.doc.toString()); }),
      EditorView.contentAttributes.of({ "aria-label": "Code editor" }),
    ],
  });
  return {
    view,
    getCode: () => view.state.doc.toString(),
    setCode: (text) => view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: text } }),
    setRuntime: (rt) => view.dispatch({ effects: language.reconfigure(languageFor(rt)) }),
    focus: () => view.focus(),
  };
}
