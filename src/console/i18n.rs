//! The console's words, from Fluent message catalogs (`i18n/*.ftl`, compiled into the
//! binary): English and Simplified Chinese. A page asks [`Tr`] for every string it shows;
//! no template holds a sentence of its own.

use std::sync::LazyLock;

use fluent_bundle::{concurrent::FluentBundle, FluentArgs, FluentResource, FluentValue};

/// The languages the console speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Lang {
    En,
    ZhCn,
}

impl Lang {
    pub(crate) const ALL: [Lang; 2] = [Lang::En, Lang::ZhCn];

    /// The BCP 47 tag (`lang` attribute, cookie value).
    pub(crate) fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::ZhCn => "zh-CN",
        }
    }

    /// The language's own name, for the switcher.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::ZhCn => "简体中文",
        }
    }

    pub(crate) fn from_tag(tag: &str) -> Option<Lang> {
        let tag = tag.trim().to_ascii_lowercase();
        if tag.starts_with("zh") {
            Some(Lang::ZhCn)
        } else if tag.starts_with("en") {
            Some(Lang::En)
        } else {
            None
        }
    }

    /// The first language of an `Accept-Language` header the console speaks, by the
    /// header's weights; English when none.
    pub(crate) fn from_accept_language(header: &str) -> Lang {
        let mut choices: Vec<(f32, Lang)> = header
            .split(',')
            .filter_map(|part| {
                let mut it = part.split(';');
                let lang = Lang::from_tag(it.next()?)?;
                let q = it
                    .find_map(|p| p.trim().strip_prefix("q="))
                    .and_then(|q| q.parse().ok())
                    .unwrap_or(1.0);
                Some((q, lang))
            })
            .collect();
        choices.sort_by(|a, b| b.0.total_cmp(&a.0));
        choices.first().map_or(Lang::En, |(_, l)| *l)
    }
}

static EN: LazyLock<FluentBundle<FluentResource>> =
    LazyLock::new(|| bundle("en", include_str!("i18n/en.ftl")));
static ZH_CN: LazyLock<FluentBundle<FluentResource>> =
    LazyLock::new(|| bundle("zh-CN", include_str!("i18n/zh-CN.ftl")));

fn bundle(tag: &str, ftl: &'static str) -> FluentBundle<FluentResource> {
    let lang = tag.parse().expect("a valid language tag");
    let mut b = FluentBundle::new_concurrent(vec![lang]);
    // No Unicode isolation marks around arguments: the HTML is escaped, and the marks
    // would show up in copied text and in tests.
    b.set_use_isolating(false);
    let resource = FluentResource::try_new(ftl.to_owned()).expect("the catalog parses");
    b.add_resource(resource)
        .expect("no message is defined twice");
    b
}

/// A translator for one page in one language.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tr {
    pub(crate) lang: Lang,
}

impl Tr {
    fn bundle(self) -> &'static FluentBundle<FluentResource> {
        match self.lang {
            Lang::En => &EN,
            Lang::ZhCn => &ZH_CN,
        }
    }

    /// The message `id`; its id itself when the catalog lacks it (a test checks that
    /// every id the templates use exists in every catalog).
    pub(crate) fn get(&self, id: &str) -> String {
        self.format(id, None)
    }

    /// The message `<prefix>-<value>`: a translated enum value (`level-critical`).
    pub(crate) fn pick(&self, prefix: &str, value: &str) -> String {
        self.get(&format!("{prefix}-{value}"))
    }

    /// The message `id` with named arguments.
    pub(crate) fn with(&self, id: &str, args: &[(&str, Arg)]) -> String {
        let mut fa = FluentArgs::new();
        for (k, v) in args {
            match v {
                Arg::Text(s) => fa.set(*k, FluentValue::from(s.as_str())),
                Arg::Number(n) => fa.set(*k, FluentValue::from(*n)),
            }
        }
        self.format(id, Some(&fa))
    }

    fn format(&self, id: &str, args: Option<&FluentArgs>) -> String {
        let b = self.bundle();
        let Some(pattern) = b.get_message(id).and_then(|m| m.value()) else {
            return id.to_owned();
        };
        let mut errors = Vec::new();
        b.format_pattern(pattern, args, &mut errors).into_owned()
    }
}

/// An argument of a message.
pub(crate) enum Arg {
    Text(String),
    Number(f64),
}

impl From<&str> for Arg {
    fn from(s: &str) -> Arg {
        Arg::Text(s.to_owned())
    }
}

impl From<String> for Arg {
    fn from(s: String) -> Arg {
        Arg::Text(s)
    }
}

impl From<usize> for Arg {
    fn from(n: usize) -> Arg {
        Arg::Number(n as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(ftl: &str) -> Vec<&str> {
        ftl.lines()
            .filter(|l| !l.starts_with([' ', '#']) && l.contains(" ="))
            .filter_map(|l| l.split(" =").next())
            .collect()
    }

    #[test]
    fn both_catalogs_define_the_same_messages() {
        let en = ids(include_str!("i18n/en.ftl"));
        let zh = ids(include_str!("i18n/zh-CN.ftl"));
        assert_eq!(en, zh);
    }

    #[test]
    fn every_message_a_template_asks_for_exists() {
        let en = ids(include_str!("i18n/en.ftl"));
        let templates = [
            include_str!("templates/base.html"),
            include_str!("templates/sign_in.html"),
            include_str!("templates/alerts.html"),
            include_str!("templates/alert_cards.html"),
            include_str!("templates/alert.html"),
            include_str!("templates/customers.html"),
            include_str!("templates/customer.html"),
            include_str!("templates/error.html"),
            include_str!("templates/segments.html"),
            include_str!("templates/segment.html"),
            include_str!("templates/reactivation.html"),
            include_str!("templates/system.html"),
            include_str!("templates/analytics.html"),
        ];
        for t in templates {
            for (i, _) in t.match_indices("t.get(\"") {
                let id: String = t[i + 7..].chars().take_while(|c| *c != '"').collect();
                assert!(en.contains(&id.as_str()), "`{id}` is in no catalog");
            }
        }
    }

    #[test]
    fn accept_language_picks_by_weight() {
        assert_eq!(
            Lang::from_accept_language("zh-CN,zh;q=0.9,en;q=0.8"),
            Lang::ZhCn
        );
        assert_eq!(
            Lang::from_accept_language("fr, en;q=0.5, zh;q=0.4"),
            Lang::En
        );
        assert_eq!(Lang::from_accept_language("de"), Lang::En);
        let tr = Tr { lang: Lang::En };
        assert_eq!(
            tr.with("alerts-total", &[("count", 1usize.into())]),
            "One alert"
        );
        assert_eq!(
            tr.with("alerts-total", &[("count", 3usize.into())]),
            "3 alerts"
        );
    }
}
