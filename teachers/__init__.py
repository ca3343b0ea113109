"""Teachers: every way of steering ω behind one small interface, and a registry by name.

A teacher has two methods: ``reset(observation_space, action_space, *, seed=None)``,
called once per episode after ``env.reset``, and ``act(observation, info)``, which
returns the env's next action. Registered teachers (:func:`list_teachers`):

============== ===============================================================
name           teacher
============== ===============================================================
none           plain MAML: the hardest tasks (ω = n_max) from the first step
random         domain randomisation: ω uniform over its range every step
linear         schedule: ω rises linearly from omega_min to omega_max at ``until`` of the budget
reverse        control schedule: ω falls from omega_max to omega_min (hard to easy)
static         the paper's static teacher: a ladder of ω, climbed at a loss threshold
adaptive       the paper's adaptive teacher: signed finite-difference steps on ω, with
               a prior and a floor (``floor="none" | "linear" | "gated"``)
adaptive-paper the adaptive teacher without our prior and floor (literal=True: Algorithm 1 line 9)
tscl-online    TSCL bandit, exponential average of score changes
tscl-naive     TSCL bandit, slopes over fixed windows of steps
tscl-window    TSCL bandit, slope of each arm's last scores
tscl-sampling  TSCL bandit, sampled score changes (Thompson sampling)
alp            absolute learning progress over ω bins (Portelas et al. 2019, discrete bins)
target-bandit  bandit over ω arms, payoff: the target-loss decrease after the arm
mixture        ω from an exponential tilt towards omega_max; the tilt learnt from the target gain
alp-gmm        ALP-GMM (Portelas et al. 2019): a Gaussian mixture over (ω, absolute learning
               progress), for vector ω (``pip install metacurriculum[gmm]``)
adr            automatic domain randomisation (OpenAI et al. 2019): a box of ω grown from the
               easiest corner where the student copes, for vector ω
sb3            a saved Stable-Baselines3 model: ``make_teacher("sb3", path=..., algo="ppo")``
syllabus-lp    Syllabus's learning-progress curriculum over an ω grid (``pip install
               metacurriculum[syllabus]``, :mod:`~metacurriculum.teachers.syllabus`)
syllabus-dr    Syllabus's domain randomisation over an ω grid
syllabus       any Syllabus curriculum: ``make_teacher("syllabus", curriculum=...)``
============== ===============================================================

On a task family with several parameters (a vector ω, e.g.
``MetaCurriculum-OmniglotMulti-v0``), ``none``, ``random``, ``linear``, ``reverse``,
``adaptive``, ``adaptive-paper``, ``alp-gmm``, ``adr``, the Syllabus teachers and SB3
policies steer every
coordinate (their class has ``vector = True``); the others are made for one coordinate
and raise ``ValueError`` at ``reset`` on such an env. A teacher that chooses ω rather
than a change can make the env with ``action_type="omega"``: the action is then ω itself.

After an episode, :func:`teacher_summary` returns a teacher's own statistics (its
optional ``summary()`` hook), e.g. ``{"teacher/own_decision_fraction": 0.1}`` for the
adaptive teacher: how often its decision, not its floor, set ω.

Running one::

    import gymnasium as gym
    import metacurriculum
    from metacurriculum.teachers import make_teacher

    env = gym.make("MetaCurriculum-Analytic-v0")
    teacher = make_teacher("adaptive", step=2.0)
    obs, info = env.reset(seed=0)
    teacher.reset(env.observation_space, env.action_space, seed=0)
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(teacher.act(obs, info))
        done = terminated or truncated
    print(info["target_loss_normalized"])

Your own teacher, as a class that picks ω (``OmegaTeacher`` turns it into the action)::

    from metacurriculum.teachers import OmegaTeacher, register_teacher

    class HalfwayTeacher(OmegaTeacher):
        def choose_omega(self, observation, info):
            return (info["omega_min"] + info["omega_max"]) / 2

    register_teacher("halfway", HalfwayTeacher)

as any class with ``reset`` and ``act`` (it then chooses the action itself), or as a
plain function::

    from metacurriculum.teachers import as_teacher

    teacher = as_teacher(lambda observation, info: [0.05])  # a little harder every step

An SB3 model plugs in unchanged: ``as_teacher(PPO.load("ppo.zip"))``, or train one
with :func:`train_sb3_teacher` (``pip install metacurriculum[sb3]``), which evaluates it
as a teacher on held-out seeds as it trains. :func:`evaluate_teacher` runs any teacher
for whole episodes and scores the students it leaves, as the harness does.
"""

from metacurriculum.teachers.base import (
    TEACHERS,
    FunctionTeacher,
    OmegaTeacher,
    Teacher,
    as_teacher,
    list_teachers,
    make_teacher,
    register_teacher,
    teacher_summary,
    vector_teachers,
)
from metacurriculum.teachers.baselines import NoCurriculumTeacher, RandomTeacher
from metacurriculum.teachers.continuous import ADRTeacher, ALPGMMTeacher
from metacurriculum.teachers.evaluation import Episode, evaluate_teacher, run_episode
from metacurriculum.teachers.paper import AdaptiveTeacher, PaperAdaptiveTeacher, StaticTeacher
from metacurriculum.teachers.progress import ALPTeacher, MixtureTeacher, TargetBanditTeacher
from metacurriculum.teachers.sb3 import (
    SB3_ALGOS,
    SB3Teacher,
    load_sb3_teacher,
    train_sb3_teacher,
)
from metacurriculum.teachers.sb3_callbacks import TeacherTrainingWarning, teacher_eval_callback
from metacurriculum.teachers.schedules import LinearTeacher, ReverseTeacher
from metacurriculum.teachers.syllabus import SyllabusTeacher
from metacurriculum.teachers.tscl import (
    POLICIES,
    BanditTeacher,
    Boltzmann,
    EpsilonGreedy,
    NaiveTeacher,
    OnlineTeacher,
    Proportional,
    SamplingTeacher,
    Thompson,
    WindowTeacher,
)

# Syllabus's curricula (an optional package: imported when one is built).
register_teacher("syllabus", "metacurriculum.teachers.syllabus:SyllabusTeacher")
register_teacher("syllabus-lp", "metacurriculum.teachers.syllabus:SyllabusLearningProgress")
register_teacher("syllabus-dr", "metacurriculum.teachers.syllabus:SyllabusDomainRandomization")

__all__ = [
    "POLICIES",
    "SB3_ALGOS",
    "TEACHERS",
    "ADRTeacher",
    "ALPGMMTeacher",
    "ALPTeacher",
    "AdaptiveTeacher",
    "BanditTeacher",
    "Boltzmann",
    "Episode",
    "EpsilonGreedy",
    "FunctionTeacher",
    "LinearTeacher",
    "MixtureTeacher",
    "NaiveTeacher",
    "NoCurriculumTeacher",
    "OmegaTeacher",
    "OnlineTeacher",
    "PaperAdaptiveTeacher",
    "Proportional",
    "RandomTeacher",
    "ReverseTeacher",
    "SB3Teacher",
    "SamplingTeacher",
    "StaticTeacher",
    "SyllabusTeacher",
    "TargetBanditTeacher",
    "Teacher",
    "TeacherTrainingWarning",
    "Thompson",
    "WindowTeacher",
    "as_teacher",
    "evaluate_teacher",
    "list_teachers",
    "load_sb3_teacher",
    "make_teacher",
    "register_teacher",
    "run_episode",
    "teacher_eval_callback",
    "teacher_summary",
    "train_sb3_teacher",
    "vector_teachers",
]
