//! Where traces go and which are kept: the standard OpenTelemetry variables, checked at start.

use crate::{ConfigError, Source};

/// Which new traces are recorded (`OTEL_TRACES_SAMPLER`, `OTEL_TRACES_SAMPLER_ARG`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum TraceSampler {
    AlwaysOn,
    AlwaysOff,
    /// This fraction of traces, chosen by trace id.
    Ratio(f64),
    /// A span with a parent follows the parent's decision; a root follows the inner sampler.
    ParentBased(RootSampler),
}

/// The sampler of root spans under [`TraceSampler::ParentBased`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RootSampler {
    AlwaysOn,
    AlwaysOff,
    Ratio(f64),
}

impl TraceSampler {
    pub fn from_source(src: &Source) -> Result<Self, ConfigError> {
        const NAME: &str = "OTEL_TRACES_SAMPLER";
        let ratio = || -> Result<f64, ConfigError> {
            let Some(raw) = src.optional_string("OTEL_TRACES_SAMPLER_ARG") else {
                return Ok(1.0);
            };
            match raw.trim().parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(ConfigError::new(
                    "OTEL_TRACES_SAMPLER_ARG",
                    format!("is {raw:?}, not a ratio between 0 and 1"),
                    "set it to the fraction of traces to keep, such as 0.1",
                )),
            }
        };
        Ok(match src.string(NAME)?.trim() {
            "always_on" => Self::AlwaysOn,
            "always_off" => Self::AlwaysOff,
            "traceidratio" => Self::Ratio(ratio()?),
            "parentbased_always_on" => Self::ParentBased(RootSampler::AlwaysOn),
            "parentbased_always_off" => Self::ParentBased(RootSampler::AlwaysOff),
            "parentbased_traceidratio" => Self::ParentBased(RootSampler::Ratio(ratio()?)),
            other => {
                return Err(ConfigError::new(
                    NAME,
                    format!("{other:?} is not a supported sampler"),
                    "use always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio",
                ));
            }
        })
    }
}

/// Checks `OTEL_EXPORTER_OTLP_PROTOCOL`: spans are sent as OTLP over HTTP with protobuf only.
pub fn check_otlp_protocol(src: &Source) -> Result<(), ConfigError> {
    const NAME: &str = "OTEL_EXPORTER_OTLP_PROTOCOL";
    match src.string(NAME)?.trim() {
        "http/protobuf" => Ok(()),
        "grpc" => Err(ConfigError::new(
            NAME,
            "is grpc, which this build does not include",
            "set it to http/protobuf and point OTEL_EXPORTER_OTLP_ENDPOINT at the collector's OTLP/HTTP port (4318)",
        )),
        other => Err(ConfigError::new(
            NAME,
            format!("{other:?} is not a supported protocol"),
            "set it to http/protobuf",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sampler(pairs: &[(&str, &str)]) -> Result<TraceSampler, ConfigError> {
        TraceSampler::from_source(&Source::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn samplers_follow_the_standard_names() {
        assert_eq!(
            sampler(&[]).ok(),
            Some(TraceSampler::ParentBased(RootSampler::AlwaysOn))
        );
        assert_eq!(
            sampler(&[
                ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.25"),
            ])
            .ok(),
            Some(TraceSampler::ParentBased(RootSampler::Ratio(0.25)))
        );
        assert_eq!(
            sampler(&[("OTEL_TRACES_SAMPLER", "traceidratio")]).ok(),
            Some(TraceSampler::Ratio(1.0))
        );
        assert_eq!(
            sampler(&[("OTEL_TRACES_SAMPLER", "always_off")]).ok(),
            Some(TraceSampler::AlwaysOff)
        );
    }

    #[test]
    fn a_bad_sampler_or_ratio_names_its_variable() {
        let e = sampler(&[("OTEL_TRACES_SAMPLER", "sometimes")]).err();
        assert!(format!("{e:?}").contains("OTEL_TRACES_SAMPLER"), "{e:?}");
        let e = sampler(&[
            ("OTEL_TRACES_SAMPLER", "traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "2"),
        ])
        .err();
        assert!(
            format!("{e:?}").contains("OTEL_TRACES_SAMPLER_ARG"),
            "{e:?}"
        );
    }

    #[test]
    fn grpc_is_refused_with_the_way_out() {
        let grpc = Source::from_pairs([("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]);
        let e = check_otlp_protocol(&grpc).err();
        assert!(format!("{e:?}").contains("http/protobuf"), "{e:?}");
        assert!(check_otlp_protocol(&Source::from_pairs::<&str, &str>([])).is_ok());
    }
}
