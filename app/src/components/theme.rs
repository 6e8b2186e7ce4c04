//! Light / dark / automatic theme.
//!
//! The theme lives in a cookie so the server renders the right one (no flash). Without
//! JavaScript the switch is a plain form posted to `/theme`; once hydrated, a click switches
//! instantly and writes the cookie in the browser.

use leptos::prelude::*;
use leptos_meta::Html;

/// The three theme choices; `Auto` follows the operating system (`prefers-color-scheme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Theme {
    Auto,
    Light,
    Dark,
}

impl Theme {
    pub fn parse(s: &str) -> Theme {
        match s {
            "light" => Theme::Light,
            "dark" => Theme::Dark,
            _ => Theme::Auto,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Theme::Auto => "auto",
            Theme::Light => "light",
            Theme::Dark => "dark",
        }
    }
    /// The order a click cycles through.
    pub fn next(self) -> Theme {
        match self {
            Theme::Auto => Theme::Light,
            Theme::Light => Theme::Dark,
            Theme::Dark => Theme::Auto,
        }
    }
    fn label(self) -> &'static str {
        match self {
            Theme::Auto => "Theme: auto",
            Theme::Light => "Theme: light",
            Theme::Dark => "Theme: dark",
        }
    }
}

pub const THEME_COOKIE: &str = "caplens_theme";

/// Reads the theme from a `Cookie` header value.
pub fn theme_from_cookie_header(header: &str) -> Theme {
    header
        .split(';')
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == THEME_COOKIE)
        .map(|(_, v)| Theme::parse(v))
        .unwrap_or(Theme::Auto)
}

fn initial_theme() -> Theme {
    #[cfg(feature = "ssr")]
    {
        use_context::<http::request::Parts>()
            .and_then(|parts| {
                parts
                    .headers
                    .get(http::header::COOKIE)
                    .and_then(|v| v.to_str().ok())
                    .map(theme_from_cookie_header)
            })
            .unwrap_or(Theme::Auto)
    }
    #[cfg(not(feature = "ssr"))]
    {
        // The server wrote the theme on <html>; start from it so hydration matches.
        document()
            .document_element()
            .and_then(|el| el.get_attribute("data-theme"))
            .map(|v| Theme::parse(&v))
            .unwrap_or(Theme::Auto)
    }
}

#[cfg(feature = "hydrate")]
fn store_theme_cookie(theme: Theme) {
    use leptos::wasm_bindgen::JsCast;
    if let Ok(doc) = document().dyn_into::<web_sys::HtmlDocument>() {
        let _ = doc.set_cookie(&format!(
            "{THEME_COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax",
            theme.as_str()
        ));
    }
}

#[component]
pub fn ThemeToggle() -> impl IntoView {
    let theme = RwSignal::new(initial_theme());
    let location = leptos_router::hooks::use_location();
    view! {
        <Html {..} data-theme=move || theme.get().as_str() />
        <form
            class="theme-toggle"
            method="post"
            action="/theme"
            on:submit=move |ev| {
                ev.prevent_default();
                let next = theme.get_untracked().next();
                theme.set(next);
                #[cfg(feature = "hydrate")] store_theme_cookie(next);
            }
        >
            <input type="hidden" name="theme" value=move || theme.get().next().as_str() />
            <input type="hidden" name="back" value=move || location.pathname.get() />
            <button
                type="submit"
                class="theme-button"
                data-testid="theme-toggle"
                title="Switch between automatic, light and dark themes"
            >
                {move || theme.get().label()}
            </button>
        </form>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_parsing_finds_the_theme_among_other_cookies() {
        assert_eq!(
            theme_from_cookie_header("a=1; caplens_theme=dark; b=2"),
            Theme::Dark
        );
        assert_eq!(
            theme_from_cookie_header("caplens_theme=light"),
            Theme::Light
        );
        assert_eq!(
            theme_from_cookie_header("caplens_theme=<script>"),
            Theme::Auto
        );
        assert_eq!(theme_from_cookie_header(""), Theme::Auto);
    }

    #[test]
    fn toggle_cycles_through_all_three() {
        let t = Theme::Auto;
        assert_eq!(t.next().next().next(), t);
        assert_ne!(t.next(), t);
    }
}
