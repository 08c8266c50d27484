//! The live page in a real headless Chromium against a replaying daemon: the page draws
//! each spectrum's frame with the box, the 68 landmarks and the face temperature on top.

use crate::common;

use std::time::Duration;

use common::chromium::Browser;
use common::daemon::{Daemon, replay_config};

/// Pixels of exactly `color` inside the element's rectangle on the screenshot.
fn count_color(shot: &image::RgbImage, rect: &serde_json::Value, color: [u8; 3]) -> usize {
    let n = |k: &str| rect[k].as_f64().unwrap_or(0.0).round() as u32;
    let (x0, y0, w, h) = (n("x"), n("y"), n("width"), n("height"));
    (x0..(x0 + w).min(shot.width()))
        .flat_map(|x| (y0..(y0 + h).min(shot.height())).map(move |y| (x, y)))
        .filter(|&(x, y)| shot.get_pixel(x, y).0 == color)
        .count()
}

fn check_page(url: &str) {
    let mut browser = Browser::open(url);
    let drawn = browser.wait_for(
        "document.querySelectorAll('canvas[data-landmarks=\"68\"]').length === 2",
        Duration::from_secs(60),
    );
    assert_eq!(
        drawn,
        serde_json::json!(true),
        "both spectra drawn with 68 landmarks; console: {:?}",
        browser.console
    );
    // A few more frames: the page keeps updating.
    let first = browser.eval("Number(document.body.dataset.framesDrawn)");
    let later = browser.wait_for(
        &format!("Number(document.body.dataset.framesDrawn) > {first} + 4"),
        Duration::from_secs(30),
    );
    assert_eq!(later, serde_json::json!(true), "the page stopped updating");
    let temperature =
        browser.eval("document.querySelector('canvas[data-spectrum=thermal]').dataset.temperature");
    let celsius: f64 = temperature
        .as_str()
        .and_then(|t| t.trim_end_matches(" °C").parse().ok())
        .unwrap_or_else(|| panic!("no face temperature drawn: {temperature}"));
    assert!(
        (33.0..38.0).contains(&celsius),
        "face temperature {celsius}"
    );
    let stats = browser.eval("document.querySelector('.stats').textContent");
    assert!(
        stats
            .as_str()
            .is_some_and(|s| s.contains("fps") && s.contains("dropped")),
        "{stats}"
    );

    // Pixels: the screenshot shows the landmark dots and the face box on both canvases.
    let rects = browser.eval(
        "[...document.querySelectorAll('canvas')].map(c => { const r = c.getBoundingClientRect(); return {x: r.x, y: r.y, width: r.width, height: r.height}; })",
    );
    let png = browser.shot_png();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"));
    std::fs::write(dir.join("live-page.png"), &png).expect("save screenshot");
    let shot = image::load_from_memory(&png)
        .expect("screenshot PNG")
        .to_rgb8();
    for (i, spectrum) in ["visible", "thermal"].iter().enumerate() {
        let points = count_color(&shot, &rects[i], [255, 40, 40]);
        let boxes = count_color(&shot, &rects[i], [0, 255, 0]);
        assert!(
            points >= 66 * 4,
            "{spectrum}: only {points} landmark pixels"
        );
        assert!(boxes >= 100, "{spectrum}: only {boxes} box pixels");
    }
    let errors: Vec<&String> = browser
        .console
        .iter()
        .filter(|m| m.starts_with("exception"))
        .collect();
    assert!(errors.is_empty(), "page errors: {errors:?}");
}

#[test]
fn live_page_draws_landmarks_boxes_and_temperature_on_both_spectra() {
    let port = common::free_port();
    let _daemon = Daemon::start(&replay_config(port, &common::repo().join("models"), ""));
    check_page(&format!("http://127.0.0.1:{port}/"));
}

#[test]
fn live_page_sends_the_token_from_its_address() {
    let port = common::free_port();
    let _daemon = Daemon::start(&replay_config(
        port,
        &common::repo().join("models"),
        "token = \"page-token\"",
    ));
    check_page(&format!("http://127.0.0.1:{port}/#token=page-token"));
}
