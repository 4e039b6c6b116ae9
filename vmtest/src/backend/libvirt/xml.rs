//! A small XML writer: elements built from types, every attribute value and text escaped in
//! one place, rendered indented (what `domain.xml` in a VM's directory shows).

use std::fmt::Write;

/// One element: a name, attributes in order, then children or text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Element {
    name: &'static str,
    attributes: Vec<(&'static str, String)>,
    content: Content,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Content {
    Children(Vec<Element>),
    Text(String),
}

impl Element {
    pub fn new(name: &'static str) -> Element {
        Element {
            name,
            attributes: Vec::new(),
            content: Content::Children(Vec::new()),
        }
    }

    /// `<name>text</name>`.
    pub fn text(name: &'static str, text: impl ToString) -> Element {
        Element {
            content: Content::Text(text.to_string()),
            ..Element::new(name)
        }
    }

    pub fn attr(mut self, name: &'static str, value: impl ToString) -> Element {
        self.attributes.push((name, value.to_string()));
        self
    }

    /// Appends `child` (an element with text gets no children).
    pub fn child(mut self, child: Element) -> Element {
        match &mut self.content {
            Content::Children(children) => children.push(child),
            Content::Text(_) => debug_assert!(false, "<{}> holds text", self.name),
        }
        self
    }

    pub fn children(self, children: impl IntoIterator<Item = Element>) -> Element {
        children.into_iter().fold(self, Element::child)
    }

    /// The document, indented by two spaces per level, ending with a newline.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out, 0);
        out
    }

    fn write(&self, out: &mut String, depth: usize) {
        let indent = "  ".repeat(depth);
        let _ = write!(out, "{indent}<{}", self.name);
        for (name, value) in &self.attributes {
            let _ = write!(out, " {name}=\"{}\"", escape(value));
        }
        match &self.content {
            Content::Children(children) if children.is_empty() => out.push_str("/>\n"),
            Content::Children(children) => {
                out.push_str(">\n");
                for child in children {
                    child.write(out, depth + 1);
                }
                let _ = writeln!(out, "{indent}</{}>", self.name);
            }
            Content::Text(text) => {
                let _ = writeln!(out, ">{}</{}>", escape(text), self.name);
            }
        }
    }
}

/// Escapes text for an attribute value or element content.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Line breaks in an attribute would be normalised to spaces by the parser.
            '\n' => out.push_str("&#10;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_nested_elements_with_everything_escaped() {
        let doc = Element::new("domain")
            .attr("type", "qemu")
            .child(Element::text("name", "a<b>&\"c'"))
            .child(Element::new("os").child(Element::text("cmdline", "x=1 y='2'\n")))
            .child(Element::new("devices"));
        assert_eq!(
            doc.render(),
            "<domain type=\"qemu\">\n  <name>a&lt;b&gt;&amp;&quot;c&apos;</name>\n  <os>\n    \
             <cmdline>x=1 y=&apos;2&apos;&#10;</cmdline>\n  </os>\n  <devices/>\n</domain>\n"
        );
    }
}
