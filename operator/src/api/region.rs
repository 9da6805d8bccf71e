//! The 21 Swedish regions, identified by their county code (*länskod*).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A Swedish region, written as its two-digit county code.
///
/// The schema lists exactly the 21 county codes in use, so the API server refuses any other
/// value and names the field in its message.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub enum CountyCode {
    /// Region Stockholm.
    #[serde(rename = "01")]
    Stockholm,
    /// Region Uppsala.
    #[serde(rename = "03")]
    Uppsala,
    /// Region Sörmland.
    #[serde(rename = "04")]
    Sodermanland,
    /// Region Östergötland.
    #[serde(rename = "05")]
    Ostergotland,
    /// Region Jönköpings län.
    #[serde(rename = "06")]
    Jonkoping,
    /// Region Kronoberg.
    #[serde(rename = "07")]
    Kronoberg,
    /// Region Kalmar län.
    #[serde(rename = "08")]
    Kalmar,
    /// Region Gotland.
    #[serde(rename = "09")]
    Gotland,
    /// Region Blekinge.
    #[serde(rename = "10")]
    Blekinge,
    /// Region Skåne.
    #[serde(rename = "12")]
    Skane,
    /// Region Halland.
    #[serde(rename = "13")]
    Halland,
    /// Västra Götalandsregionen.
    #[serde(rename = "14")]
    VastraGotaland,
    /// Region Värmland.
    #[serde(rename = "17")]
    Varmland,
    /// Region Örebro län.
    #[serde(rename = "18")]
    Orebro,
    /// Region Västmanland.
    #[serde(rename = "19")]
    Vastmanland,
    /// Region Dalarna.
    #[serde(rename = "20")]
    Dalarna,
    /// Region Gävleborg.
    #[serde(rename = "21")]
    Gavleborg,
    /// Region Västernorrland.
    #[serde(rename = "22")]
    Vasternorrland,
    /// Region Jämtland Härjedalen.
    #[serde(rename = "23")]
    JamtlandHarjedalen,
    /// Region Västerbotten.
    #[serde(rename = "24")]
    Vasterbotten,
    /// Region Norrbotten.
    #[serde(rename = "25")]
    Norrbotten,
}

/// The six healthcare regions (*sjukvårdsregioner*) that group the regions.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum HealthcareRegion {
    /// Norra sjukvårdsregionen.
    Norra,
    /// Sjukvårdsregion Mellansverige.
    Mellansverige,
    /// Sjukvårdsregion Stockholm-Gotland.
    StockholmGotland,
    /// Sydöstra sjukvårdsregionen.
    Sydostra,
    /// Södra sjukvårdsregionen.
    Sodra,
    /// Västra sjukvårdsregionen.
    Vastra,
}

impl CountyCode {
    /// All 21 regions, in county-code order.
    pub const ALL: [CountyCode; 21] = [
        Self::Stockholm,
        Self::Uppsala,
        Self::Sodermanland,
        Self::Ostergotland,
        Self::Jonkoping,
        Self::Kronoberg,
        Self::Kalmar,
        Self::Gotland,
        Self::Blekinge,
        Self::Skane,
        Self::Halland,
        Self::VastraGotaland,
        Self::Varmland,
        Self::Orebro,
        Self::Vastmanland,
        Self::Dalarna,
        Self::Gavleborg,
        Self::Vasternorrland,
        Self::JamtlandHarjedalen,
        Self::Vasterbotten,
        Self::Norrbotten,
    ];

    /// The two-digit county code, as written in manifests and labels.
    pub fn code(self) -> &'static str {
        match self {
            Self::Stockholm => "01",
            Self::Uppsala => "03",
            Self::Sodermanland => "04",
            Self::Ostergotland => "05",
            Self::Jonkoping => "06",
            Self::Kronoberg => "07",
            Self::Kalmar => "08",
            Self::Gotland => "09",
            Self::Blekinge => "10",
            Self::Skane => "12",
            Self::Halland => "13",
            Self::VastraGotaland => "14",
            Self::Varmland => "17",
            Self::Orebro => "18",
            Self::Vastmanland => "19",
            Self::Dalarna => "20",
            Self::Gavleborg => "21",
            Self::Vasternorrland => "22",
            Self::JamtlandHarjedalen => "23",
            Self::Vasterbotten => "24",
            Self::Norrbotten => "25",
        }
    }

    /// The region's name in Swedish.
    pub fn name(self) -> &'static str {
        match self {
            Self::Stockholm => "Stockholm",
            Self::Uppsala => "Uppsala",
            Self::Sodermanland => "Södermanland",
            Self::Ostergotland => "Östergötland",
            Self::Jonkoping => "Jönköping",
            Self::Kronoberg => "Kronoberg",
            Self::Kalmar => "Kalmar",
            Self::Gotland => "Gotland",
            Self::Blekinge => "Blekinge",
            Self::Skane => "Skåne",
            Self::Halland => "Halland",
            Self::VastraGotaland => "Västra Götaland",
            Self::Varmland => "Värmland",
            Self::Orebro => "Örebro",
            Self::Vastmanland => "Västmanland",
            Self::Dalarna => "Dalarna",
            Self::Gavleborg => "Gävleborg",
            Self::Vasternorrland => "Västernorrland",
            Self::JamtlandHarjedalen => "Jämtland Härjedalen",
            Self::Vasterbotten => "Västerbotten",
            Self::Norrbotten => "Norrbotten",
        }
    }

    /// The county's NUTS 3 code (Eurostat, 2021 classification), for example `SE110`; the
    /// catalogue gives spatial coverage as NUTS IRIs.
    pub fn nuts3(self) -> &'static str {
        match self {
            Self::Stockholm => "SE110",
            Self::Uppsala => "SE121",
            Self::Sodermanland => "SE122",
            Self::Ostergotland => "SE123",
            Self::Orebro => "SE124",
            Self::Vastmanland => "SE125",
            Self::Jonkoping => "SE211",
            Self::Kronoberg => "SE212",
            Self::Kalmar => "SE213",
            Self::Gotland => "SE214",
            Self::Blekinge => "SE221",
            Self::Skane => "SE224",
            Self::Halland => "SE231",
            Self::VastraGotaland => "SE232",
            Self::Varmland => "SE311",
            Self::Dalarna => "SE312",
            Self::Gavleborg => "SE313",
            Self::Vasternorrland => "SE321",
            Self::JamtlandHarjedalen => "SE322",
            Self::Vasterbotten => "SE331",
            Self::Norrbotten => "SE332",
        }
    }

    /// The healthcare region the region belongs to.
    pub fn healthcare_region(self) -> HealthcareRegion {
        use HealthcareRegion::*;
        match self {
            Self::Stockholm | Self::Gotland => StockholmGotland,
            Self::Uppsala
            | Self::Sodermanland
            | Self::Varmland
            | Self::Orebro
            | Self::Vastmanland
            | Self::Dalarna
            | Self::Gavleborg => Mellansverige,
            Self::Ostergotland | Self::Jonkoping | Self::Kalmar => Sydostra,
            Self::Kronoberg | Self::Blekinge | Self::Skane | Self::Halland => Sodra,
            Self::VastraGotaland => Vastra,
            Self::Vasternorrland
            | Self::JamtlandHarjedalen
            | Self::Vasterbotten
            | Self::Norrbotten => Norra,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialised_form_is_the_county_code() {
        for region in CountyCode::ALL {
            let json = serde_json::to_value(region).expect("serialise");
            assert_eq!(json, serde_json::Value::from(region.code()));
            let back: CountyCode = serde_json::from_value(json).expect("deserialise");
            assert_eq!(back, region);
        }
    }

    #[test]
    fn schema_lists_exactly_the_21_codes() {
        let schema = serde_json::to_value(schemars::schema_for!(CountyCode)).expect("schema");
        let text = schema.to_string();
        for region in CountyCode::ALL {
            assert!(
                text.contains(&format!("\"{}\"", region.code())),
                "{}",
                region.code()
            );
        }
        assert!(!text.contains("\"02\""));
        assert!(!text.contains("\"11\""));
    }

    #[test]
    fn healthcare_regions_cover_all_six() {
        let mut seen: Vec<HealthcareRegion> = CountyCode::ALL
            .iter()
            .map(|r| r.healthcare_region())
            .collect();
        seen.dedup();
        let distinct: std::collections::HashSet<_> = seen.into_iter().collect();
        assert_eq!(distinct.len(), 6);
    }
}
