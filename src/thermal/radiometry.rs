//! Raw thermal values → temperature.
//!
//! Two kinds of 16-bit thermal data reach us:
//! * **TLinear / centi-kelvin** (Boson, Lepton and most UVC thermal heads in radiometric
//!   mode): the value is already the scene temperature in 0.01 K.
//! * **Raw radiometric counts** (FLIR `.fff`/`.seq`, Duo Pro R, Tau): the sensor signal,
//!   which the camera's factory calibration turns into temperature with Planck's law.
//!
//! The Planck conversion below is the one FLIR cameras use, as documented by ExifTool
//! (FLIR tags) and derived in Minkina & Dudzik, *Infrared Thermography: Errors and
//! Uncertainties* (Wiley 2009), ch. 3; it is the same chain as the `raw2temp` functions of
//! ThermImage (R) and flirpy (Python), which our tests compare against:
//!
//! ```text
//! raw(T)  = R1 / (R2 · (exp(B / T) − F)) − O                      (T in kelvin)
//! T(raw)  = B / ln(R1 / (R2 · (raw + O)) + F)
//! ```
//! The camera sees the object through the atmosphere and an optional window, so the
//! object's own signal is recovered first:
//! ```text
//! raw_obj = raw / (E·τ₁·τ_w·τ₂)
//!         − (1−E)/E · raw(T_refl)                  reflected surroundings
//!         − (1−τ₁)/(E·τ₁) · raw(T_atm)             atmosphere, object side of the window
//!         − (1−τ_w)/(E·τ₁·τ_w) · raw(T_window)     window emission
//!         − (1−τ₂)/(E·τ₁·τ_w·τ₂) · raw(T_atm)      atmosphere, camera side
//! τ = X·exp(−√(d/2)·(α₁ + β₁·√h₂o)) + (1−X)·exp(−√(d/2)·(α₂ + β₂·√h₂o))
//! h₂o = RH · exp(1.5587 + 0.06939·t − 0.00027816·t² + 0.00000068455·t³)   (t = T_atm in °C)
//! ```
//! (the window is assumed half-way, so both atmospheric paths use d/2, as FLIR does).

use serde::{Deserialize, Serialize};

const KELVIN: f64 = 273.15;

/// The camera's factory calibration constants.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlanckConstants {
    pub r1: f64,
    pub r2: f64,
    pub b: f64,
    pub f: f64,
    pub o: f64,
}

/// Atmospheric transmission coefficients (camera metadata; FLIR defaults when absent).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AtmosphereConstants {
    pub alpha1: f64,
    pub alpha2: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub x: f64,
}

impl Default for AtmosphereConstants {
    /// The values FLIR writes for most of its cameras (ExifTool docs, flirpy samples).
    fn default() -> Self {
        AtmosphereConstants {
            alpha1: 0.006569,
            alpha2: 0.012620,
            beta1: -0.002276,
            beta2: -0.006670,
            x: 1.9,
        }
    }
}

/// The scene: what the object is and what lies between it and the camera.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectParameters {
    pub emissivity: f64,
    pub distance_m: f64,
    pub reflected_c: f64,
    pub atmospheric_c: f64,
    pub window_c: f64,
    pub window_transmission: f64,
    /// Relative humidity as a fraction, 0…1.
    pub humidity: f64,
}

impl Default for ObjectParameters {
    /// Human skin (ε ≈ 0.98) at kiosk distance indoors.
    fn default() -> Self {
        ObjectParameters {
            emissivity: 0.98,
            distance_m: 1.0,
            reflected_c: 20.0,
            atmospheric_c: 20.0,
            window_c: 20.0,
            window_transmission: 1.0,
            humidity: 0.5,
        }
    }
}

/// Operator overrides of the object parameters (config); unset fields keep the camera's.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ObjectOverrides {
    pub emissivity: Option<f64>,
    pub distance_m: Option<f64>,
    pub reflected_c: Option<f64>,
    pub atmospheric_c: Option<f64>,
    pub humidity: Option<f64>,
}

impl ObjectParameters {
    pub fn with(mut self, o: &ObjectOverrides) -> Self {
        self.emissivity = o.emissivity.unwrap_or(self.emissivity);
        self.distance_m = o.distance_m.unwrap_or(self.distance_m);
        self.reflected_c = o.reflected_c.unwrap_or(self.reflected_c);
        self.atmospheric_c = o.atmospheric_c.unwrap_or(self.atmospheric_c);
        self.humidity = o.humidity.unwrap_or(self.humidity);
        self
    }
}

/// What a thermal frame's 16-bit values mean.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "units", rename_all = "snake_case", deny_unknown_fields)]
pub enum Radiometry {
    /// TLinear: value = temperature in 0.01 K.
    Centikelvin,
    /// Raw sensor counts with the camera's Planck calibration.
    Planck {
        planck: PlanckConstants,
        #[serde(default)]
        atmosphere: AtmosphereConstants,
        #[serde(default)]
        object: ObjectParameters,
    },
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum RadiometryError {
    #[error("{field} = {value} is out of range ({why})")]
    OutOfRange {
        field: &'static str,
        value: f64,
        why: &'static str,
    },
}

impl Radiometry {
    /// Rejects constants that would make every temperature NaN or infinite.
    pub fn validate(&self) -> Result<(), RadiometryError> {
        let Radiometry::Planck { planck, object, .. } = self else {
            return Ok(());
        };
        let check = |field, value: f64, ok: bool, why| {
            if ok && value.is_finite() {
                Ok(())
            } else {
                Err(RadiometryError::OutOfRange { field, value, why })
            }
        };
        check("planck.r1", planck.r1, planck.r1 > 0.0, "must be > 0")?;
        check("planck.r2", planck.r2, planck.r2 > 0.0, "must be > 0")?;
        check("planck.b", planck.b, planck.b > 0.0, "must be > 0")?;
        check("planck.f", planck.f, true, "must be finite")?;
        check("planck.o", planck.o, true, "must be finite")?;
        check(
            "emissivity",
            object.emissivity,
            object.emissivity > 0.0 && object.emissivity <= 1.0,
            "0 < emissivity <= 1",
        )?;
        check(
            "distance_m",
            object.distance_m,
            object.distance_m >= 0.0,
            "must be >= 0",
        )?;
        check(
            "humidity",
            object.humidity,
            (0.0..=1.0).contains(&object.humidity),
            "a fraction 0…1",
        )?;
        check(
            "window_transmission",
            object.window_transmission,
            object.window_transmission > 0.0 && object.window_transmission <= 1.0,
            "0 < transmission <= 1",
        )
    }

    /// Applies operator overrides to the object parameters (Planck only).
    pub fn with_overrides(self, overrides: &ObjectOverrides) -> Radiometry {
        match self {
            Radiometry::Planck {
                planck,
                atmosphere,
                object,
            } => Radiometry::Planck {
                planck,
                atmosphere,
                object: object.with(overrides),
            },
            other => other,
        }
    }

    /// A converter with the per-scene terms worked out once.
    pub fn converter(&self) -> Converter {
        match *self {
            Radiometry::Centikelvin => Converter::Centikelvin,
            Radiometry::Planck {
                planck,
                atmosphere,
                object,
            } => Converter::Planck(PlanckConverter::new(planck, atmosphere, object)),
        }
    }
}

/// Converts raw values of one camera and scene to °C and back.
#[derive(Debug, Clone, Copy)]
pub enum Converter {
    Centikelvin,
    Planck(PlanckConverter),
}

impl Converter {
    pub fn celsius(&self, raw: u16) -> f64 {
        match self {
            Converter::Centikelvin => raw as f64 / 100.0 - KELVIN,
            Converter::Planck(p) => p.celsius(raw as f64),
        }
    }

    /// The raw value that reads as `celsius` (for fixed °C display ranges).
    pub fn raw_for(&self, celsius: f64) -> f64 {
        match self {
            Converter::Centikelvin => (celsius + KELVIN) * 100.0,
            Converter::Planck(p) => p.raw_for(celsius),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct PlanckConverter {
    planck: PlanckConstants,
    /// raw_obj = raw · gain − offset
    gain: f64,
    offset: f64,
}

impl PlanckConverter {
    fn new(planck: PlanckConstants, atm: AtmosphereConstants, obj: ObjectParameters) -> Self {
        let radiance = |celsius: f64| {
            planck.r1 / (planck.r2 * ((planck.b / (celsius + KELVIN)).exp() - planck.f)) - planck.o
        };
        let t = obj.atmospheric_c;
        let h2o = obj.humidity
            * (1.5587 + 0.06939 * t - 0.00027816 * t * t + 0.00000068455 * t * t * t).exp();
        let path = (obj.distance_m / 2.0).sqrt();
        let tau = atm.x * (-path * (atm.alpha1 + atm.beta1 * h2o.sqrt())).exp()
            + (1.0 - atm.x) * (-path * (atm.alpha2 + atm.beta2 * h2o.sqrt())).exp();
        let (e, tw) = (obj.emissivity, obj.window_transmission);
        let window_emissivity = 1.0 - tw;
        let to_object = 1.0 / (e * tau * tw * tau);
        let atm_raw = radiance(obj.atmospheric_c);
        let offset = (1.0 - e) / e * radiance(obj.reflected_c)
            + (1.0 - tau) / (e * tau) * atm_raw
            + window_emissivity / (e * tau * tw) * radiance(obj.window_c)
            + (1.0 - tau) * to_object * atm_raw;
        PlanckConverter {
            planck,
            gain: to_object,
            offset,
        }
    }

    pub fn celsius(&self, raw: f64) -> f64 {
        let p = &self.planck;
        let object = raw * self.gain - self.offset;
        p.b / (p.r1 / (p.r2 * (object + p.o)) + p.f).ln() - KELVIN
    }

    pub fn raw_for(&self, celsius: f64) -> f64 {
        let p = &self.planck;
        let object = p.r1 / (p.r2 * ((p.b / (celsius + KELVIN)).exp() - p.f)) - p.o;
        (object + self.offset) / self.gain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn duo_pro_r() -> Radiometry {
        // Constants of the flirpy sample frame (FLIR Duo Pro R, from its metadata).
        Radiometry::Planck {
            planck: PlanckConstants {
                r1: 364058.0,
                r2: 1.0,
                b: 1428.0,
                f: 1.0,
                o: -228.0,
            },
            atmosphere: AtmosphereConstants::default(),
            object: ObjectParameters {
                emissivity: 0.94,
                distance_m: 50.0,
                reflected_c: 20.0,
                atmospheric_c: 20.0,
                window_c: 22.0,
                window_transmission: 1.0,
                humidity: 0.3,
            },
        }
    }

    #[test]
    fn planck_round_trips() {
        let c = duo_pro_r().converter();
        for raw in [2623.0, 2700.0, 3500.0] {
            let t = match c {
                Converter::Planck(p) => p.celsius(raw),
                Converter::Centikelvin => unreachable!(),
            };
            assert!((c.raw_for(t) - raw).abs() < 1e-6, "{raw} -> {t}");
        }
    }

    #[test]
    fn blackbody_at_zero_distance_reads_its_own_temperature() {
        // ε = 1, no atmosphere: the raw value of a 36.6 °C blackbody must read 36.6 °C.
        let mut r = duo_pro_r();
        if let Radiometry::Planck { object, .. } = &mut r {
            object.emissivity = 1.0;
            object.distance_m = 0.0;
        }
        let c = r.converter();
        let raw = c.raw_for(36.6);
        assert!((c.celsius(raw.round() as u16) - 36.6).abs() < 0.2);
    }

    #[test]
    fn invalid_constants_are_named() {
        let mut r = duo_pro_r();
        if let Radiometry::Planck { object, .. } = &mut r {
            object.emissivity = 0.0;
        }
        let e = r.validate().expect_err("emissivity 0").to_string();
        assert!(e.contains("emissivity"), "{e}");
        assert!(Radiometry::Centikelvin.validate().is_ok());
    }
}
