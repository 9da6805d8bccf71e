//! Serialisations of the catalogue (Turtle, JSON-LD, RDF/XML, N-Triples) and the choice
//! between them from an HTTP `Accept` header.

use oxrdfio::{JsonLdProfileSet, RdfFormat, RdfSerializer};

use super::graph::Triples;
use super::vocab::PREFIXES;

/// A serialisation the catalogue is offered in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// `text/turtle`, the default.
    Turtle,
    /// `application/ld+json`.
    JsonLd,
    /// `application/rdf+xml`.
    RdfXml,
    /// `application/n-triples`.
    NTriples,
}

impl Format {
    /// Every format, the default first.
    pub const ALL: [Format; 4] = [
        Format::Turtle,
        Format::JsonLd,
        Format::RdfXml,
        Format::NTriples,
    ];

    /// The media type.
    pub fn media_type(self) -> &'static str {
        match self {
            Format::Turtle => "text/turtle",
            Format::JsonLd => "application/ld+json",
            Format::RdfXml => "application/rdf+xml",
            Format::NTriples => "application/n-triples",
        }
    }

    /// The file extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Turtle => "ttl",
            Format::JsonLd => "jsonld",
            Format::RdfXml => "rdf",
            Format::NTriples => "nt",
        }
    }

    /// The format named by a media type, an extension or a short name (`turtle`, `jsonld`,
    /// `rdfxml`, `ntriples`).
    pub fn parse(name: &str) -> Option<Format> {
        let name = name.trim().to_ascii_lowercase();
        Format::ALL.into_iter().find(|f| {
            name == f.media_type()
                || name == f.extension()
                || name
                    == match f {
                        Format::Turtle => "turtle",
                        Format::JsonLd => "json-ld",
                        Format::RdfXml => "rdf-xml",
                        Format::NTriples => "ntriples",
                    }
                || name.replace('-', "") == format!("{f:?}").to_ascii_lowercase()
        })
    }

    fn oxigraph(self) -> RdfFormat {
        match self {
            Format::Turtle => RdfFormat::Turtle,
            Format::JsonLd => RdfFormat::JsonLd {
                profile: JsonLdProfileSet::empty(),
            },
            Format::RdfXml => RdfFormat::RdfXml,
            Format::NTriples => RdfFormat::NTriples,
        }
    }
}

/// The best format for an `Accept` header by its quality values; Turtle when the header is
/// missing or accepts anything; `None` when it accepts none of the formats.
pub fn negotiate(accept: Option<&str>) -> Option<Format> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Some(Format::Turtle);
    };
    let mut best: Option<(f32, usize, Format)> = None;
    for (order, range) in accept.split(',').enumerate() {
        let mut parts = range.split(';');
        let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
        let mut q = 1.0f32;
        for param in parts {
            if let Some(v) = param.trim().strip_prefix("q=") {
                q = v.trim().parse().unwrap_or(0.0);
            }
        }
        if q <= 0.0 {
            continue;
        }
        let format = match media.as_str() {
            "*/*" | "text/*" => Some(Format::Turtle),
            "application/*" => Some(Format::JsonLd),
            "application/json" => Some(Format::JsonLd),
            m => Format::ALL.into_iter().find(|f| f.media_type() == m),
        };
        let Some(format) = format else { continue };
        // Higher quality wins; at equal quality the earlier range wins, and a wildcard never
        // beats an exact type.
        let exact = !media.contains('*');
        let score = q + if exact { 0.0001 } else { 0.0 };
        if best.is_none_or(|(bq, bo, _)| score > bq || (score == bq && order < bo)) {
            best = Some((score, order, format));
        }
    }
    best.map(|(_, _, f)| f)
}

/// Serialises triples in `format`, declaring the catalogue's prefixes.
pub fn serialize(triples: &Triples, format: Format) -> std::io::Result<Vec<u8>> {
    let mut serializer = RdfSerializer::from_format(format.oxigraph());
    if format != Format::NTriples {
        for (prefix, iri) in PREFIXES {
            serializer = serializer
                .with_prefix(*prefix, *iri)
                .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        }
    }
    let mut writer = serializer.for_writer(Vec::new());
    for t in triples.grouped() {
        writer.serialize_triple(t)?;
    }
    writer.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_accept_header_chooses_by_quality_and_defaults_to_turtle() {
        assert_eq!(negotiate(None), Some(Format::Turtle));
        assert_eq!(negotiate(Some("*/*")), Some(Format::Turtle));
        assert_eq!(negotiate(Some("application/ld+json")), Some(Format::JsonLd));
        assert_eq!(
            negotiate(Some("text/turtle;q=0.5, application/rdf+xml")),
            Some(Format::RdfXml)
        );
        assert_eq!(
            negotiate(Some("text/html, */*;q=0.1")),
            Some(Format::Turtle),
            "an unknown type falls back to the wildcard"
        );
        assert_eq!(
            negotiate(Some("application/n-triples, */*")),
            Some(Format::NTriples),
            "an exact type beats a wildcard of the same quality"
        );
        assert_eq!(negotiate(Some("text/html")), None);
        assert_eq!(negotiate(Some("text/turtle;q=0")), None);
    }

    #[test]
    fn formats_are_named_by_media_type_extension_or_name() {
        assert_eq!(Format::parse("jsonld"), Some(Format::JsonLd));
        assert_eq!(Format::parse("json-ld"), Some(Format::JsonLd));
        assert_eq!(Format::parse("text/turtle"), Some(Format::Turtle));
        assert_eq!(Format::parse("rdfxml"), Some(Format::RdfXml));
        assert_eq!(Format::parse("nt"), Some(Format::NTriples));
        assert_eq!(Format::parse("csv"), None);
    }
}
