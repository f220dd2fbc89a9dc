//! `tfgate_model_label NAME LABEL VERSION [VERSION:PERCENT ...];` — a label, optionally sending
//! a share of subjects to other versions. Shares are written `2:10%` (as in `split_clients`) or
//! `2:10`. The choice is sticky: a subject's bucket is a hash of
//! (model, label, subject), so it is the same in every worker, across reloads and restarts.

use aws_lc_rs::digest;

use super::model::parse_version;

/// Shares are kept in basis points (1/100 of a percent), so "2.5" is exact.
const WHOLE: u32 = 10_000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelDecl {
    pub model: String,
    pub label: String,
    /// The version the label names (for the subjects not split away).
    pub version: i64,
    /// (version, basis points) sent elsewhere.
    pub splits: Vec<(i64, u32)>,
}

impl LabelDecl {
    pub fn parse(args: &[&str]) -> Result<LabelDecl, String> {
        let [model, label, version, splits @ ..] = args else {
            return Err("needs a model, a label and a version".into());
        };
        if label.is_empty() || label.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("invalid label \"{label}\" (a label is not a number)"));
        }
        if let Err(e) = tfgate_common::check_name(label, "label") {
            return Err(format!("invalid label \"{label}\": {e}"));
        }
        let splits = splits.iter().map(|s| parse_split(s)).collect::<Result<Vec<_>, _>>()?;
        let total: u64 = splits.iter().map(|(_, share)| u64::from(*share)).sum();
        if total > u64::from(WHOLE) {
            return Err(format!("the shares of label \"{label}\" add up to more than 100%"));
        }
        Ok(LabelDecl {
            model: (*model).to_owned(),
            label: (*label).to_owned(),
            version: parse_version(version)?,
            splits,
        })
    }

    /// Every version this label may send a request to.
    pub fn versions(&self) -> impl Iterator<Item = i64> + '_ {
        std::iter::once(self.version).chain(self.splits.iter().map(|(v, _)| *v))
    }

    /// The version for a subject (or, when anonymous, a stable client key).
    pub fn version_for(&self, subject: &str) -> i64 {
        if self.splits.is_empty() {
            return self.version;
        }
        let bucket = bucket(&self.model, &self.label, subject);
        let mut upper = 0u32;
        for (version, share) in &self.splits {
            upper = upper.saturating_add(*share);
            if bucket < upper {
                return *version;
            }
        }
        self.version
    }
}

fn parse_split(raw: &str) -> Result<(i64, u32), String> {
    let (version, percent) = raw.split_once(':').ok_or_else(|| format!("invalid split \"{raw}\" (VERSION:PERCENT)"))?;
    Ok((parse_version(version)?, parse_percent(percent).ok_or_else(|| format!("invalid percentage in \"{raw}\""))?))
}

/// "10", "10%", "2.5", "0.25%" -> basis points; at most two decimals, at most 100.
fn parse_percent(raw: &str) -> Option<u32> {
    let raw = raw.strip_suffix('%').unwrap_or(raw);
    let (whole, fraction) = raw.split_once('.').unwrap_or((raw, ""));
    if whole.is_empty() || fraction.len() > 2 || !(whole.bytes().chain(fraction.bytes())).all(|b| b.is_ascii_digit()) {
        return None;
    }
    let whole: u32 = whole.parse().ok()?;
    let fraction: u32 = format!("{fraction:0<2}").parse().ok()?;
    let points = whole.checked_mul(100)?.checked_add(fraction)?;
    (points <= WHOLE).then_some(points)
}

/// A uniform bucket in 0..10000 for (model, label, subject).
fn bucket(model: &str, label: &str, subject: &str) -> u32 {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for part in [model, label, subject] {
        ctx.update(&(part.len() as u64).to_le_bytes());
        ctx.update(part.as_bytes());
    }
    let digest = ctx.finish();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_ref()[..8]);
    (u64::from_le_bytes(first) % u64::from(WHOLE)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_labels_and_splits() {
        let l = LabelDecl::parse(&["m", "canary", "1", "2:10", "3:2.5"]).unwrap();
        assert_eq!((l.version, l.splits.clone()), (1, vec![(2, 1000), (3, 250)]));
        let percent = LabelDecl::parse(&["m", "canary", "1", "2:10%", "3:2.5%"]).unwrap();
        assert_eq!(percent.splits, l.splits, "split_clients-style shares");
        assert_eq!(l.versions().collect::<Vec<_>>(), vec![1, 2, 3]);
        for bad in [
            &["m", "c"][..],
            &["m", "7", "1"],
            &["m", "c#x", "1"],
            &["m", "c/x", "1"],
            &["m", "c", "x"],
            &["m", "c", "1", "2"],
            &["m", "c", "1", "2:x"],
            &["m", "c", "1", "2:60", "3:41"],
            &["m", "c", "1", "2:1.234"],
            &["m", "c", "1", "2:101"],
            &["m", "c", "1", "2:%"],
            &["m", "c", "1", "2:10%%"],
            &["m", "c", "1", "2:%10"],
        ] {
            assert!(LabelDecl::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_ten_percent_split_over_ten_thousand_subjects() {
        let l = LabelDecl::parse(&["half_plus_two", "canary", "1", "2:10"]).unwrap();
        let to_two = (0..10_000).filter(|i| l.version_for(&format!("user-{i}")) == 2).count();
        assert!((800..=1200).contains(&to_two), "{to_two}");
        for i in 0..100 {
            let subject = format!("user-{i}");
            assert_eq!(l.version_for(&subject), l.version_for(&subject), "sticky");
        }
    }

    #[test]
    fn no_split_is_the_named_version() {
        assert_eq!(LabelDecl::parse(&["m", "stable", "4"]).unwrap().version_for("anyone"), 4);
    }
}
