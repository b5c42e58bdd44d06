//! Template rendering outside a request (emails), with the engine and the names the pages use.
//!
//! rocket_dyn_templates renders the browser pages (`Template` responders) from `template_dir`.
//! Emails are rendered by background work with no request at hand, so the kernel keeps its own
//! MiniJinja environment over the same folder, naming templates the same way: the path below
//! `template_dir` minus `.j2` and one more extension (`email/en/password_reset/html.html.j2` is
//! `email/en/password_reset/html`), HTML-escaped when that extension is `html`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use minijinja::{AutoEscape, Environment};
use rocket::figment::value::magic::RelativePathBuf;
use rocket::figment::Figment;
use serde::Serialize;

use crate::error::Failure;

pub const DEFAULT_TEMPLATE_DIR: &str = "templates";

/// The configured `template_dir`, resolved as Rocket resolves it.
pub fn template_dir(figment: &Figment) -> Result<PathBuf, Failure> {
    match figment.extract_inner::<RelativePathBuf>("template_dir") {
        Ok(path) => Ok(path.relative()),
        Err(e) if e.missing() => Ok(PathBuf::from(DEFAULT_TEMPLATE_DIR)),
        Err(e) => Err(Failure::new("template_dir", e)),
    }
}

#[derive(Clone)]
pub struct Renderer {
    env: Arc<Environment<'static>>,
}

/// `a/b/c.html.j2` → (`a/b/c`, `html`), as rocket_dyn_templates names it.
fn template_name(root: &Path, path: &Path) -> Option<(String, String)> {
    let relative = path.strip_prefix(root).ok()?.to_str()?.replace('\\', "/");
    let stem = relative.strip_suffix(".j2")?;
    match stem.rsplit_once('.') {
        Some((name, ext)) if !name.ends_with('/') => Some((name.to_owned(), ext.to_owned())),
        _ => Some((stem.to_owned(), String::new())),
    }
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, found)?;
        } else if path.extension().is_some_and(|e| e == "j2") {
            found.push(path);
        }
    }
    Ok(())
}

impl Renderer {
    /// Reads every template below `root` and compiles each once (a syntax error stops the start
    /// rather than failing an email), then keeps their sources: a template is compiled again
    /// when it is first rendered, and kept. Compiled, the folder's 79 templates took about
    /// 1.2 MiB for the life of the process, most of them emails in languages nobody used
    /// (BENCHMARKS.md, memory); the sources take 0.4 MiB at most.
    pub fn load(root: &Path) -> Result<Renderer, Failure> {
        let mut files = Vec::new();
        walk(root, &mut files)
            .map_err(|e| Failure::new(format!("template_dir {}", root.display()), e))?;
        let mut sources = HashMap::new();
        let mut escaped = HashMap::new();
        let mut paths = Vec::new();
        for path in files {
            let Some((name, ext)) = template_name(root, &path) else {
                continue;
            };
            let source = std::fs::read_to_string(&path)
                .map_err(|e| Failure::new(path.display().to_string(), e))?;
            escaped.insert(name.clone(), ext == "html");
            sources.insert(name.clone(), source);
            paths.push((name, path));
        }
        let escaped = Arc::new(escaped);
        let environment = || {
            let mut env = Environment::new();
            // Auto-escape is fixed when a template is compiled (docs/architecture.md,
            // "Templates"): set the rule first.
            let escaped = Arc::clone(&escaped);
            env.set_auto_escape_callback(move |name| {
                if escaped.get(name).copied().unwrap_or(false) {
                    AutoEscape::Html
                } else {
                    AutoEscape::None
                }
            });
            env
        };
        let mut check = environment();
        for (name, path) in &paths {
            check
                .add_template(name, &sources[name])
                .map_err(|e| Failure::new(path.display().to_string(), e))?;
        }
        drop(check);
        let mut env = environment();
        env.set_loader(move |name| Ok(sources.get(name).cloned()));
        Ok(Renderer { env: Arc::new(env) })
    }

    pub fn render(&self, name: &str, context: impl Serialize) -> Result<String, Failure> {
        let failed = |e| Failure::new(format!("template {name}"), e);
        let template = self.env.get_template(name).map_err(failed)?;
        template.render(context).map_err(failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_like_rocket_dyn_templates() {
        let root = Path::new("/t");
        let name = |p: &str| template_name(root, Path::new(p));
        assert_eq!(
            name("/t/email/en/reset/html.html.j2"),
            Some(("email/en/reset/html".into(), "html".into()))
        );
        assert_eq!(
            name("/t/pages/layout.html.j2"),
            Some(("pages/layout".into(), "html".into()))
        );
        assert_eq!(name("/t/a.j2"), Some(("a".into(), String::new())));
        assert_eq!(name("/t/a.txt"), None);
    }

    #[test]
    fn html_is_escaped_text_is_not() {
        let dir = std::env::temp_dir().join(format!("stride-templates-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("m")).expect("dir");
        std::fs::write(dir.join("m/html.html.j2"), "<p>{{ x }}</p>").expect("write");
        std::fs::write(dir.join("m/text.txt.j2"), "{{ x }}").expect("write");
        let r = Renderer::load(&dir).expect("load");
        let ctx = serde_json::json!({"x": "<b>&"});
        assert_eq!(
            r.render("m/html", &ctx).expect("html"),
            "<p>&lt;b&gt;&amp;</p>"
        );
        assert_eq!(r.render("m/text", &ctx).expect("text"), "<b>&");
        std::fs::remove_dir_all(dir).ok();
    }

    /// Templates are compiled when first rendered, but a broken one still stops the load,
    /// named by its path, and one that extends another finds it through the loader.
    #[test]
    fn a_broken_template_fails_the_load_and_layouts_are_found_when_rendering() {
        let dir =
            std::env::temp_dir().join(format!("stride-templates-lazy-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("m")).expect("dir");
        std::fs::write(
            dir.join("m/layout.html.j2"),
            "<main>{% block body %}{% endblock %}</main>",
        )
        .expect("write");
        std::fs::write(
            dir.join("m/page.html.j2"),
            r#"{% extends "m/layout" %}{% block body %}<p>{{ x }}</p>{% endblock %}"#,
        )
        .expect("write");
        let r = Renderer::load(&dir).expect("load");
        assert_eq!(
            r.render("m/page", serde_json::json!({"x": "<i>"}))
                .expect("page"),
            "<main><p>&lt;i&gt;</p></main>"
        );
        assert!(r.render("m/absent", serde_json::json!({})).is_err());
        std::fs::write(dir.join("m/broken.txt.j2"), "{% if x %}never closed").expect("write");
        let error = Renderer::load(&dir)
            .err()
            .expect("a broken template fails the load");
        assert!(error.to_string().contains("broken.txt.j2"), "{error}");
        std::fs::remove_dir_all(dir).ok();
    }
}
