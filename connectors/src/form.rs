//! HTML form bodies: `application/x-www-form-urlencoded` and `multipart/form-data`.
//!
//! Only what webhooks need: text fields in order, file parts skipped. Errors say what is
//! wrong with the framing, never what the fields contain.

/// Why a form body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    #[error("multipart body without a boundary parameter")]
    MissingBoundary,
    #[error("multipart body is not framed by its boundary")]
    BadFraming,
    #[error("form body is not valid urlencoded text")]
    BadUrlencoded,
}

/// The fields of a form body, in order. `content_type` picks the format; without one, a body
/// that starts like multipart framing is read as multipart, anything else as urlencoded.
pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    let ct = content_type.unwrap_or("").trim();
    if ct.to_ascii_lowercase().starts_with("multipart/form-data") {
        let boundary = boundary_of(ct).ok_or(FormError::MissingBoundary)?;
        return parse_multipart(body, &boundary);
    }
    if ct.is_empty() && body.starts_with(b"--") {
        if let Some(boundary) = sniff_boundary(body) {
            return parse_multipart(body, &boundary);
        }
    }
    parse_urlencoded(body)
}

/// `a=1&b=two+words` → `[("a","1"),("b","two words")]`.
pub fn parse_urlencoded(body: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    serde_urlencoded::from_bytes::<Vec<(String, String)>>(body).map_err(|_| FormError::BadUrlencoded)
}

/// The first value of `name`.
pub fn get<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// The `boundary` parameter of a multipart content type (quotes removed).
pub fn boundary_of(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|param| {
        let (k, v) = param.split_once('=')?;
        if !k.trim().eq_ignore_ascii_case("boundary") {
            return None;
        }
        let v = v.trim();
        let v = v.strip_prefix('"').and_then(|x| x.strip_suffix('"')).unwrap_or(v);
        (!v.is_empty()).then(|| v.to_string())
    })
}

fn sniff_boundary(body: &[u8]) -> Option<String> {
    let line_end = find(body, b"\n", 0)?;
    let line = body.get(2..line_end)?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let b = std::str::from_utf8(line).ok()?;
    (!b.is_empty() && b.len() <= 200).then(|| b.to_string())
}

/// Read the text parts of a multipart/form-data body (RFC 7578).
pub fn parse_multipart(body: &[u8], boundary: &str) -> Result<Vec<(String, String)>, FormError> {
    // RFC 2046 caps boundaries at 70 characters; a longer one would make searching costly.
    if boundary.is_empty() || boundary.len() > 200 {
        return Err(FormError::BadFraming);
    }
    let delimiter = format!("--{boundary}");
    let delimiter = delimiter.as_bytes();
    let mut fields = Vec::new();
    let mut pos = find(body, delimiter, 0).ok_or(FormError::BadFraming)? + delimiter.len();
    loop {
        let rest = body.get(pos..).ok_or(FormError::BadFraming)?;
        if rest.starts_with(b"--") {
            return Ok(fields);
        }
        // Skip transport padding and the line break after the delimiter.
        let header_start = pos + find(rest, b"\n", 0).ok_or(FormError::BadFraming)? + 1;
        // Parts never contain the delimiter, so each search stays within one part and the
        // whole parse is linear in the body.
        let next = find(body, delimiter, header_start).ok_or(FormError::BadFraming)?;
        let part = body.get(header_start..next).ok_or(FormError::BadFraming)?;
        let (headers_end, content_start) = match (find(part, b"\r\n\r\n", 0), find(part, b"\n\n", 0)) {
            (Some(a), Some(b)) if b < a => (header_start + b, header_start + b + 2),
            (Some(a), _) => (header_start + a, header_start + a + 4),
            (None, Some(b)) => (header_start + b, header_start + b + 2),
            (None, None) => return Err(FormError::BadFraming),
        };
        // The line break before the next delimiter belongs to the framing.
        let mut content_end = next;
        if content_end > content_start && body.get(content_end - 1) == Some(&b'\n') {
            content_end -= 1;
            if content_end > content_start && body.get(content_end - 1) == Some(&b'\r') {
                content_end -= 1;
            }
        }
        let headers = String::from_utf8_lossy(body.get(header_start..headers_end).ok_or(FormError::BadFraming)?);
        let content = body.get(content_start..content_end).ok_or(FormError::BadFraming)?;
        if let Some((name, is_file)) = disposition(&headers) {
            if !is_file {
                fields.push((name, String::from_utf8_lossy(content).into_owned()));
            }
        }
        pos = next + delimiter.len();
    }
}

/// The field name of a part and whether it is a file upload.
fn disposition(headers: &str) -> Option<(String, bool)> {
    let line = headers
        .lines()
        .find(|l| l.split_once(':').is_some_and(|(k, _)| k.trim().eq_ignore_ascii_case("content-disposition")))?;
    let (_, value) = line.split_once(':')?;
    let mut name = None;
    let mut is_file = false;
    for param in split_params(value) {
        let Some((k, v)) = param.split_once('=') else { continue };
        match k.trim().to_ascii_lowercase().as_str() {
            "name" => name = Some(unquote(v.trim())),
            "filename" | "filename*" => is_file = true,
            _ => {}
        }
    }
    name.map(|n| (n, is_file))
}

/// Split `form-data; name="a;b"; filename=x` on semicolons outside quotes.
fn split_params(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    let mut escaped = false;
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            ';' if !in_quotes => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&value[start..]);
    out
}

fn unquote(v: &str) -> String {
    match v.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    if let Some(n) = chars.next() {
                        out.push(n);
                    }
                } else {
                    out.push(c);
                }
            }
            out
        }
        None => v.to_string(),
    }
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    haystack.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn urlencoded_decodes_plus_and_percent() {
        let f = parse(Some("application/x-www-form-urlencoded"), b"Body=Hello+there%21&From=%2B14155550100").unwrap();
        assert_eq!(get(&f, "Body"), Some("Hello there!"));
        assert_eq!(get(&f, "From"), Some("+14155550100"));
    }

    #[test]
    fn multipart_reads_text_parts_and_skips_files() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"formID\"\r\n\r\n123\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"up\"; filename=\"a.txt\"\r\nContent-Type: text/plain\r\n\r\nfile\r\n\
--XyZ\r\nContent-Disposition: form-data; name=\"rawRequest\"\r\n\r\n{\"a\":\"line1\r\nline2\"}\r\n--XyZ--\r\n";
        let f = parse(Some("multipart/form-data; boundary=XyZ"), body).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(get(&f, "formID"), Some("123"));
        assert_eq!(get(&f, "rawRequest"), Some("{\"a\":\"line1\r\nline2\"}"));
        assert_eq!(get(&f, "up"), None);
    }

    #[test]
    fn multipart_quoted_boundary_and_sniffing() {
        let body = b"--a b\nContent-Disposition: form-data; name=\"x\"\n\n1\n--a b--\n";
        assert_eq!(parse(Some("multipart/form-data; boundary=\"a b\""), body).unwrap(), vec![("x".into(), "1".into())]);
        assert_eq!(parse(None, body).unwrap(), vec![("x".into(), "1".into())]);
    }

    #[test]
    fn many_parts_parse_in_linear_time() {
        let mut body = Vec::new();
        for i in 0..20_000 {
            body.extend_from_slice(
                format!("--b\r\nContent-Disposition: form-data; name=\"f{i}\"\r\n\r\nv\r\n").as_bytes(),
            );
        }
        body.extend_from_slice(b"--b--\r\n");
        assert_eq!(parse(Some("multipart/form-data; boundary=b"), &body).unwrap().len(), 20_000);
    }

    #[test]
    fn multipart_framing_errors() {
        assert_eq!(parse(Some("multipart/form-data"), b"x"), Err(FormError::MissingBoundary));
        assert_eq!(parse(Some("multipart/form-data; boundary=q"), b"nothing"), Err(FormError::BadFraming));
        assert_eq!(
            parse(
                Some("multipart/form-data; boundary=q"),
                b"--q\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nunterminated"
            ),
            Err(FormError::BadFraming)
        );
    }
}
