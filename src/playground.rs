//! The GraphiQL playground, served from the binary (it works offline), opened with every
//! operation under playground/ as a tab.

include!(concat!(env!("OUT_DIR"), "/playground_files.rs"));

const PAGE: &str = include_str!("playground.html");

/// A playground operation file: its text and the variables its `# variables:` line gives.
pub struct PlaygroundOperation {
    pub name: &'static str,
    pub text: &'static str,
}

impl PlaygroundOperation {
    /// The JSON after `# variables:`, or `{}`.
    pub fn variables(&self) -> &'static str {
        self.header("variables").unwrap_or("{}")
    }

    /// Who runs it: `anonymous`, `guest`, `user` or `admin` (the `# viewer:` line).
    pub fn viewer(&self) -> &'static str {
        self.header("viewer").unwrap_or("anonymous")
    }

    fn header(&self, key: &str) -> Option<&'static str> {
        self.text.lines().filter_map(|line| line.strip_prefix('#')).find_map(|line| {
            let (name, value) = line.split_once(':')?;
            (name.trim() == key).then(|| value.trim())
        })
    }
}

/// The order a newcomer meets the API in; other folders follow alphabetically.
const TAB_ORDER: [&str; 6] = ["catalog/", "auth/", "cart/", "checkout/", "flash-sales/", "admin/"];

pub fn operations() -> impl Iterator<Item = PlaygroundOperation> {
    let mut files: Vec<&(&str, &str)> = PLAYGROUND_FILES.iter().collect();
    files.sort_by_key(|(name, _)| {
        (TAB_ORDER.iter().position(|folder| name.starts_with(folder)).unwrap_or(TAB_ORDER.len()), *name)
    });
    files.into_iter().map(|(name, text)| PlaygroundOperation { name, text })
}

pub fn page() -> String {
    let tabs: Vec<serde_json::Value> =
        operations().map(|op| serde_json::json!({ "query": op.text, "variables": op.variables() })).collect();
    let tabs = serde_json::to_string(&tabs).unwrap_or_else(|_| "[]".to_owned());
    // Keep `</script>` inside an operation from closing the page's script element.
    PAGE.replace("__TABS__", &tabs.replace("</", "<\\/"))
}

pub fn asset(name: &str) -> Option<(&'static str, &'static [u8])> {
    const JS: &str = "text/javascript; charset=utf-8";
    Some(match name {
        "graphiql.min.js" => (JS, include_bytes!("../vendor/graphiql/graphiql.min.js")),
        "graphiql.min.css" => ("text/css; charset=utf-8", include_bytes!("../vendor/graphiql/graphiql.min.css")),
        "react.production.min.js" => (JS, include_bytes!("../vendor/graphiql/react.production.min.js")),
        "react-dom.production.min.js" => (JS, include_bytes!("../vendor/graphiql/react-dom.production.min.js")),
        "graphql-ws.min.js" => (JS, include_bytes!("../vendor/graphiql/graphql-ws.min.js")),
        _ => return None,
    })
}
