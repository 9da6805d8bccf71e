//! The vocabularies of DCAT-AP 3 and HealthDCAT-AP, as IRIs.

use oxrdf::NamedNodeRef;

macro_rules! terms {
    ($(#[$doc:meta])* $module:ident = $ns:literal { $($name:ident = $local:literal),* $(,)? }) => {
        $(#[$doc])*
        pub mod $module {
            use super::NamedNodeRef;
            /// The namespace IRI.
            pub const NS: &str = $ns;
            $(
                #[doc = concat!("`", $ns, $local, "`")]
                pub const $name: NamedNodeRef<'static> =
                    NamedNodeRef::new_unchecked(concat!($ns, $local));
            )*
        }
    };
}

terms!(
    /// W3C Data Catalog Vocabulary.
    dcat = "http://www.w3.org/ns/dcat#" {
        CATALOG = "Catalog", DATASET = "Dataset", DISTRIBUTION = "Distribution",
        DATASET_PROP = "dataset", DISTRIBUTION_PROP = "distribution", ACCESS_URL = "accessURL",
        CONTACT_POINT = "contactPoint", THEME = "theme", THEME_TAXONOMY = "themeTaxonomy",
        KEYWORD = "keyword", START_DATE = "startDate", END_DATE = "endDate",
        MEDIA_TYPE = "mediaType", BYTE_SIZE = "byteSize",
        ACCESS_SERVICE = "accessService", DATA_SERVICE = "DataService",
        ENDPOINT_URL = "endpointURL", SERVES_DATASET = "servesDataset",
    }
);
terms!(
    /// Dublin Core terms.
    dct = "http://purl.org/dc/terms/" {
        TITLE = "title", DESCRIPTION = "description", PUBLISHER = "publisher",
        IDENTIFIER = "identifier", ACCESS_RIGHTS = "accessRights", LANGUAGE = "language",
        PROVENANCE = "provenance", TYPE = "type", TEMPORAL = "temporal", SPATIAL = "spatial",
        CONFORMS_TO = "conformsTo", RIGHTS_STATEMENT = "RightsStatement",
        LINGUISTIC_SYSTEM = "LinguisticSystem", LOCATION = "Location",
        PERIOD_OF_TIME = "PeriodOfTime", PROVENANCE_STATEMENT = "ProvenanceStatement",
        FORMAT = "format", MODIFIED = "modified", LICENSE = "license",
        LICENSE_DOCUMENT = "LicenseDocument", MEDIA_TYPE_CLASS = "MediaType",
        MEDIA_TYPE_OR_EXTENT = "MediaTypeOrExtent",
    }
);
terms!(
    /// DCAT-AP's own terms.
    dcatap = "http://data.europa.eu/r5r/" {
        APPLICABLE_LEGISLATION = "applicableLegislation", AVAILABILITY = "availability",
    }
);
terms!(
    /// HealthDCAT-AP.
    health = "http://healthdataportal.eu/ns/health#" {
        HDAB = "hdab", HEALTH_CATEGORY = "healthCategory",
        HAS_STRUCTURED_DATA = "hasStructuredData", HAS_VARIABLES = "hasVariables",
        HAS_CODING_SYSTEM = "hasCodingSystem", NUMBER_OF_RECORDS = "numberOfRecords",
        NUMBER_OF_UNIQUE_INDIVIDUALS = "numberOfUniqueIndividuals",
        MIN_TYPICAL_AGE = "minTypicalAge", MAX_TYPICAL_AGE = "maxTypicalAge",
    }
);
terms!(
    /// FOAF.
    foaf = "http://xmlns.com/foaf/0.1/" {
        AGENT = "Agent", NAME = "name", HOMEPAGE = "homepage", DOCUMENT = "Document",
    }
);
terms!(
    /// vCard.
    vcard = "http://www.w3.org/2006/vcard/ns#" { KIND = "Kind", FN = "fn", HAS_EMAIL = "hasEmail" }
);
terms!(
    /// Core Vocabularies (contact points of HealthDCAT-AP agents).
    cv = "http://data.europa.eu/m8g/" {
        CONTACT_POINT_CLASS = "ContactPoint", CONTACT_POINT = "contactPoint", EMAIL = "email",
    }
);
terms!(
    /// SKOS.
    skos = "http://www.w3.org/2004/02/skos/core#" {
        CONCEPT = "Concept", CONCEPT_SCHEME = "ConceptScheme", PREF_LABEL = "prefLabel",
        IN_SCHEME = "inScheme",
    }
);
terms!(
    /// CSV on the Web (variables).
    csvw = "http://www.w3.org/ns/csvw#" {
        TABLE_GROUP = "TableGroup", TABLE = "Table", COLUMN = "Column", TABLE_PROP = "table",
        COLUMN_PROP = "column", NAME = "name", TITLE = "title", DATATYPE = "datatype",
    }
);
terms!(
    /// Data Privacy Vocabulary.
    dpv = "https://w3id.org/dpv#" {
        HAS_LEGAL_BASIS = "hasLegalBasis", HAS_PURPOSE = "hasPurpose", LEGAL_BASIS = "LegalBasis",
        PURPOSE = "Purpose",
    }
);
terms!(
    /// PROV-O.
    prov = "http://www.w3.org/ns/prov#" { WAS_DERIVED_FROM = "wasDerivedFrom" }
);
terms!(
    /// European Legislation Identifier ontology.
    eli = "http://data.europa.eu/eli/ontology#" { LEGAL_RESOURCE = "LegalResource" }
);
terms!(
    /// Hydra (paging of large catalogues).
    hydra = "http://www.w3.org/ns/hydra/core#" {
        PARTIAL_COLLECTION_VIEW = "PartialCollectionView", VIEW = "view",
        TOTAL_ITEMS = "totalItems", FIRST = "first", LAST = "last", NEXT = "next",
        PREVIOUS = "previous",
    }
);

/// Base of the EU access-right vocabulary.
pub const ACCESS_RIGHT: &str = "http://publications.europa.eu/resource/authority/access-right/";
/// The EU data-theme vocabulary (a concept scheme).
pub const DATA_THEME: &str = "http://publications.europa.eu/resource/authority/data-theme";
/// Base of the EU dataset-type vocabulary.
pub const DATASET_TYPE: &str = "http://publications.europa.eu/resource/authority/dataset-type/";
/// Base of the EU language vocabulary.
pub const LANGUAGE: &str = "http://publications.europa.eu/resource/authority/language/";
/// Base of the ADMS publisher-type vocabulary.
pub const PUBLISHER_TYPE: &str = "http://purl.org/adms/publishertype/";
/// Sweden in the EU country vocabulary.
/// EU file types (DCAT-AP's recommended `dct:format` values).
pub const FILE_TYPE: &str = "http://publications.europa.eu/resource/authority/file-type/";
/// EU planned availability (DCAT-AP's `dcatap:availability`).
pub const PLANNED_AVAILABILITY: &str =
    "http://publications.europa.eu/resource/authority/planned-availability/";
/// IANA media types (DCAT-AP's `dcat:mediaType`).
pub const MEDIA_TYPES: &str = "https://www.iana.org/assignments/media-types/";
/// The EU file-type code of an IANA media type the flow writes.
pub fn file_type(media_type: &str) -> Option<&'static str> {
    Some(match media_type {
        "application/vnd.apache.parquet" => "PARQUET",
        "text/csv" => "CSV",
        "application/json" => "JSON",
        "text/html" => "HTML",
        _ => return None,
    })
}

pub const SWEDEN: &str = "http://publications.europa.eu/resource/authority/country/SWE";
/// Base of Eurostat's NUTS codes.
pub const NUTS: &str = "http://data.europa.eu/nuts/code/";

/// The prefixes the serialisations declare.
pub const PREFIXES: &[(&str, &str)] = &[
    ("dcat", dcat::NS),
    ("dct", dct::NS),
    ("dcatap", dcatap::NS),
    ("healthdcatap", health::NS),
    ("foaf", foaf::NS),
    ("vcard", vcard::NS),
    ("cv", cv::NS),
    ("skos", skos::NS),
    ("csvw", csvw::NS),
    ("dpv", dpv::NS),
    ("prov", prov::NS),
    ("eli", eli::NS),
    ("hydra", hydra::NS),
    ("rdfs", "http://www.w3.org/2000/01/rdf-schema#"),
    ("xsd", "http://www.w3.org/2001/XMLSchema#"),
];

/// The EU language vocabulary's code for an ISO 639-1 code.
pub fn language(iso639_1: &str) -> Option<&'static str> {
    Some(match iso639_1 {
        "sv" => "SWE",
        "en" => "ENG",
        "fi" => "FIN",
        "da" => "DAN",
        "nb" | "no" => "NOR",
        "nn" => "NNO",
        "de" => "DEU",
        "fr" => "FRA",
        "es" => "SPA",
        "it" => "ITA",
        "nl" => "NLD",
        "pl" => "POL",
        "et" => "EST",
        "lv" => "LAV",
        "lt" => "LIT",
        _ => return None,
    })
}
