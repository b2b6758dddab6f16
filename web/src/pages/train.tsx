import { Page } from '../components/ui';
// Built in the next commits.
export function TrainPage(_props: Record<string, string>) { return <Page title="TrainPage"><p>Not built yet.</p></Page>; }
