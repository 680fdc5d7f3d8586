//! What a caption asserts about a scene, up to sizes and positions: enough to tell which
//! other scenes a caption is also true of, so contrastive training does not push an image
//! away from a caption that describes it ("a red shape" is true of every scene with exactly
//! one red object, not only of the one it was written for).

use super::scene::{Group, Scene};
use super::vocab::{Colour, Shape};

/// "Exactly `count` objects of this colour and/or shape": one noun phrase of a caption.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Counted {
    colour: Option<Colour>,
    shape: Option<Shape>,
    count: usize,
}

impl Counted {
    fn holds_for(&self, scene: &Scene) -> bool {
        let matching = scene
            .objects
            .iter()
            .filter(|o| self.colour.is_none_or(|c| o.colour == c))
            .filter(|o| self.shape.is_none_or(|s| o.shape == s))
            .count();
        matching == self.count
    }
}

/// The content of a caption: its noun phrases, and whether they name everything in the
/// scene. Sizes and positions are left out, so a claim holds for at least every scene
/// the caption is true of (treating a few true negatives as possible positives, never
/// the reverse).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    phrases: Vec<Counted>,
    whole_scene: bool,
}

impl Claim {
    /// What a caption naming every group of `scene` says ("two red circles and a star").
    pub fn scene(scene: &Scene) -> Self {
        Claim {
            phrases: scene.groups().iter().map(group_phrase).collect(),
            whole_scene: true,
        }
    }

    /// What a caption naming `group` alone says ("a red heart"), whatever else is there.
    pub fn group(group: &Group) -> Self {
        Claim {
            phrases: vec![group_phrase(group)],
            whole_scene: false,
        }
    }

    /// What a colour caption of `scene` says ("two red shapes": every red object counted).
    pub fn colour(scene: &Scene, colour: Colour) -> Self {
        let count = scene.objects.iter().filter(|o| o.colour == colour).count();
        Claim {
            phrases: vec![Counted {
                colour: Some(colour),
                shape: None,
                count,
            }],
            whole_scene: false,
        }
    }

    /// What a shape caption of `scene` says ("a star": every star counted).
    pub fn shape(scene: &Scene, shape: Shape) -> Self {
        let count = scene.objects.iter().filter(|o| o.shape == shape).count();
        Claim {
            phrases: vec![Counted {
                colour: None,
                shape: Some(shape),
                count,
            }],
            whole_scene: false,
        }
    }

    /// Whether `scene` shows what the claim says (sizes and positions aside).
    pub fn holds_for(&self, scene: &Scene) -> bool {
        self.phrases.iter().all(|p| p.holds_for(scene))
            && (!self.whole_scene || self.count() == scene.objects.len())
    }

    /// How many objects the claim names, over all its phrases ("two red shapes": 2).
    pub fn count(&self) -> usize {
        self.phrases.iter().map(|p| p.count).sum()
    }
}

fn group_phrase(group: &Group) -> Counted {
    Counted {
        colour: Some(group.colour),
        shape: Some(group.shape),
        count: group.count,
    }
}
