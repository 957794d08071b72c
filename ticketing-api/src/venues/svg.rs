//! The SVG safety check. A venue's drawing is uploaded by an organizer and shown to every fan,
//! so it must never carry script: it is parsed with a real XML parser and accepted only if
//! every element is on an allow-list of plain drawing elements and no attribute can run code
//! or fetch anything outside the document.
//!
//! This is an allow-list on purpose: anything not understood is refused. The document is
//! stored exactly as checked and also served with a CSP that forbids scripts
//! (`routes::venues`), so a gap here still does not execute.

use quick_xml::{
    Reader,
    events::{BytesStart, Event},
};

use super::VenueError;

/// The only elements a layout drawing may contain (names are case-sensitive, no prefixes).
const ALLOWED_ELEMENTS: &[&str] = &[
    "svg",
    "g",
    "path",
    "rect",
    "circle",
    "ellipse",
    "line",
    "polyline",
    "polygon",
    "text",
    "tspan",
    "title",
    "desc",
    "defs",
    "linearGradient",
    "radialGradient",
    "stop",
    "clipPath",
    "symbol",
    "use",
];

/// Deeper nesting than this is not a drawing.
const MAX_DEPTH: usize = 64;

fn refuse(message: impl Into<String>) -> VenueError {
    VenueError::UnsafeSvg(message.into())
}

/// Accepts a well-formed SVG document made only of allowed elements and harmless attributes.
pub fn check(svg: &str) -> Result<(), VenueError> {
    let mut reader = Reader::from_str(svg);
    let config = reader.config_mut();
    config.check_end_names = true;
    config.check_comments = true;
    config.allow_dangling_amp = false;
    config.allow_unmatched_ends = false;

    let mut depth = 0usize;
    let mut saw_root = false;
    let mut first = true;
    loop {
        let event = reader
            .read_event()
            .map_err(|err| refuse(format!("The SVG is not well-formed XML: {err}.")))?;
        let is_first = std::mem::replace(&mut first, false);
        match event {
            Event::Decl(decl) => {
                if !is_first {
                    return Err(refuse("The XML declaration must come first."));
                }
                if let Some(encoding) = decl.encoding() {
                    let encoding = encoding.map_err(|_| refuse("Bad XML declaration."))?;
                    if !encoding.eq_ignore_ascii_case("utf-8") {
                        return Err(refuse("The SVG must be UTF-8."));
                    }
                }
            }
            Event::PI(_) => return Err(refuse("Processing instructions are not allowed.")),
            Event::DocType(_) => {
                return Err(refuse("DOCTYPE and entity declarations are not allowed."));
            }
            Event::GeneralRef(reference) => {
                let known = reference.is_char_ref()
                    || matches!(&*reference, "lt" | "gt" | "amp" | "apos" | "quot");
                if !known {
                    return Err(refuse(format!("Unknown entity &{};.", &*reference)));
                }
                if depth == 0 {
                    return Err(refuse("Nothing may stand outside the <svg> element."));
                }
            }
            Event::Text(text) => {
                if depth == 0 && !text.trim().is_empty() {
                    return Err(refuse("Nothing may stand outside the <svg> element."));
                }
            }
            Event::CData(_) => {
                if depth == 0 {
                    return Err(refuse("Nothing may stand outside the <svg> element."));
                }
            }
            Event::Comment(_) => {}
            Event::Start(element) => {
                check_element(&element, depth, saw_root)?;
                saw_root = true;
                depth += 1;
                if depth > MAX_DEPTH {
                    return Err(refuse(format!("Elements nest at most {MAX_DEPTH} deep.")));
                }
            }
            Event::Empty(element) => {
                check_element(&element, depth, saw_root)?;
                saw_root = true;
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Eof => {
                if !saw_root {
                    return Err(refuse("The document has no <svg> element."));
                }
                if depth != 0 {
                    return Err(refuse("The SVG is not well-formed XML: unclosed element."));
                }
                return Ok(());
            }
        }
    }
}

fn check_element(element: &BytesStart<'_>, depth: usize, saw_root: bool) -> Result<(), VenueError> {
    let name = element.name().into_inner();
    if depth == 0 {
        if saw_root {
            return Err(refuse("The document has more than one root element."));
        }
        if name != "svg" {
            return Err(refuse("The root element must be <svg>."));
        }
    }
    if !ALLOWED_ELEMENTS.contains(&name) {
        return Err(refuse(format!("Element <{name}> is not allowed.")));
    }
    for attribute in element.attributes().with_checks(true) {
        let attribute =
            attribute.map_err(|err| refuse(format!("Bad attribute on <{name}>: {err}.")))?;
        let key = attribute.key.into_inner();
        let local = attribute.key.local_name().into_inner().to_ascii_lowercase();
        // Entities and character references are resolved first: `&#106;avascript:` is
        // `javascript:` to a browser.
        let value = attribute
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map_err(|err| refuse(format!("Bad value of {key} on <{name}>: {err}.")))?;
        check_attribute(name, key, &local, &value)?;
    }
    Ok(())
}

fn check_attribute(element: &str, key: &str, local: &str, value: &str) -> Result<(), VenueError> {
    if local.starts_with("on") {
        return Err(refuse(format!(
            "Event handler attribute {key} on <{element}> is not allowed."
        )));
    }
    if local == "base" {
        return Err(refuse(format!("Attribute {key} is not allowed.")));
    }
    // Browsers ignore ASCII whitespace and control characters inside URL schemes
    // (`java\tscript:`), and CSS is case-insensitive: compare a squeezed, lower-case copy.
    let squeezed: String = value
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .flat_map(char::to_lowercase)
        .collect();
    if local == "href" && !value.trim_start().starts_with('#') {
        return Err(refuse(format!(
            "{key} on <{element}> may only point inside the document (#id)."
        )));
    }
    for scheme in ["javascript:", "vbscript:"] {
        if squeezed.contains(scheme) {
            return Err(refuse(format!(
                "{key} on <{element}> contains {scheme}, which is not allowed."
            )));
        }
    }
    // CSS escapes (`\75 rl(`) could spell anything; a drawing never needs them.
    if value.contains('\\') {
        return Err(refuse(format!(
            "{key} on <{element}> contains a backslash, which is not allowed."
        )));
    }
    if squeezed.contains("expression(") || squeezed.contains("@import") {
        return Err(refuse(format!(
            "{key} on <{element}> contains CSS that is not allowed."
        )));
    }
    let mut rest = squeezed.as_str();
    while let Some(at) = rest.find("url(") {
        rest = &rest[at + 4..];
        let target = rest.trim_start_matches(['"', '\'']);
        if !target.starts_with('#') {
            return Err(refuse(format!(
                "{key} on <{element}> may only use url(#id)."
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &str =
        r#"xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink""#;

    fn svg(body: &str) -> String {
        format!(r#"<svg {NS} viewBox="0 0 100 100">{body}</svg>"#)
    }

    #[test]
    fn plain_drawings_are_accepted() {
        for good in [
            r#"<svg/>"#.to_string(),
            format!(r#"<?xml version="1.0" encoding="UTF-8"?>{}"#, svg("")),
            svg(r##"<g id="a"><rect x="1" y="2" width="3" height="4" fill="#333"/></g>"##),
            svg(
                r##"<defs><linearGradient id="g"><stop offset="0" stop-color="red"/></linearGradient></defs><rect fill="url(#g)" style="fill: url( '#g' ); stroke: black"/>"##,
            ),
            svg(
                r##"<symbol id="s"><circle r="2"/></symbol><use href="#s" x="5"/><use xlink:href="#s"/>"##,
            ),
            svg(
                r#"<title>Stage &amp; floor &#169;</title><desc>A <![CDATA[hall]]></desc><text x="1">STAGE<tspan>!</tspan></text>"#,
            ),
            svg(r#"<!-- a comment --><path d="M0 0 L10 10 Z"/><polygon points="0,0 1,1 2,0"/>"#),
            svg(
                r##"<clipPath id="c"><ellipse rx="1" ry="2"/></clipPath><line x1="0" y1="0" x2="1" y2="1" clip-path="url(#c)"/><polyline points="1 2 3 4"/>"##,
            ),
            svg(r#"<radialGradient id="r"/>"#),
        ] {
            assert!(
                check(&good).is_ok(),
                "{good} should pass: {:?}",
                check(&good)
            );
        }
    }

    #[test]
    fn anything_that_could_run_or_fetch_is_refused() {
        for bad in [
            svg("<script>alert(1)</script>"),
            svg("<SCRIPT>alert(1)</SCRIPT>"),
            svg(r#"<svg:script xmlns:svg="http://www.w3.org/2000/svg">alert(1)</svg:script>"#),
            svg(
                r#"<foreignObject><div xmlns="http://www.w3.org/1999/xhtml">x</div></foreignObject>"#,
            ),
            svg("<style>rect { fill: red }</style>"),
            svg(r#"<image href="https://evil.test/x.png"/>"#),
            svg(r#"<a href="javascript:alert(1)"><rect/></a>"#),
            svg(r#"<animate attributeName="href" to="javascript:alert(1)"/>"#),
            svg(r#"<set attributeName="onmouseover" to="alert(1)"/>"#),
            svg("<iframe/>"),
            format!(r#"<svg {NS} onload="alert(1)"/>"#),
            format!(r#"<svg {NS} ONLOAD="alert(1)"/>"#),
            svg(r#"<rect onclick="alert(1)"/>"#),
            svg(r#"<rect xlink:onclick="alert(1)"/>"#),
            svg(r##"<use href="https://evil.test/sprite.svg#a"/>"##),
            svg(r#"<use xlink:href="javascript:alert(1)"/>"#),
            svg(r#"<use xlink:href="data:image/svg+xml,&lt;svg onload=alert(1)&gt;"/>"#),
            svg(r##"<use href=" //evil.test/x#a"/>"##),
            svg(r##"<rect fill="java&#x09;script:alert(1)"/>"##),
            svg(r##"<rect fill="&#106;avascript:alert(1)"/>"##),
            svg(r#"<rect style="background: url(https://evil.test/beacon)"/>"#),
            svg(r#"<rect style="background: URL( 'https://evil.test/beacon' )"/>"#),
            svg(r##"<rect fill="url(#ok)" stroke="url(http://evil.test/x)"/>"##),
            svg(r#"<rect style="background: \75 rl(https://evil.test)"/>"#),
            svg(r#"<rect style="width: expression(alert(1))"/>"#),
            svg(r#"<g xml:base="https://evil.test/"/>"#),
            svg(r#"<rect fill="vbscript:x"/>"#),
        ] {
            assert!(
                matches!(check(&bad), Err(VenueError::UnsafeSvg(_))),
                "{bad} should be refused"
            );
        }
    }

    #[test]
    fn doctypes_entities_instructions_and_broken_xml_are_refused() {
        for bad in [
            format!(
                r#"<?xml version="1.0"?><!DOCTYPE svg [<!ENTITY x "boom">]>{}"#,
                svg("<text>&x;</text>")
            ),
            format!(
                r#"<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">{}"#,
                svg("")
            ),
            svg("<text>&x;</text>"),
            format!(
                r#"<?xml-stylesheet href="https://evil.test/a.css"?>{}"#,
                svg("")
            ),
            svg(r#"<?php echo 1 ?>"#),
            format!(r#"{}<?xml version="1.0"?>"#, svg("")),
            format!(r#"<?xml version="1.0" encoding="UTF-7"?>{}"#, svg("")),
            svg("<g>"),
            svg("</g>"),
            svg("<rect></g>"),
            format!(r#"<svg {NS} a="1" a="2"/>"#),
            format!(r#"<svg {NS} disabled/>"#),
            format!("{}{}", svg(""), svg("")),
            format!("{}trailing", svg("")),
            "<rect/>".to_string(),
            "".to_string(),
            "not xml at all".to_string(),
            "<svg/onload=alert(1)>".to_string(),
            svg("<!-- a -- b -->"),
            svg(&format!("{}{}", "<g>".repeat(100), "</g>".repeat(100))),
        ] {
            assert!(
                matches!(check(&bad), Err(VenueError::UnsafeSvg(_))),
                "{bad} should be refused"
            );
        }
    }
}
